import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { choosePoly1305, noble, poly1305Backend } from '../../src/restic/poly1305.js';

const sodium = () => createRequire(import.meta.url)('sodium-native') as unknown;

describe('Poly1305 backends', () => {
  it('uses libsodium where sodium-native is installed, and it agrees with noble on every length', () => {
    const backend = poly1305Backend();
    expect(backend.name).toBe('libsodium');
    const a = Buffer.alloc(16);
    const b = Buffer.alloc(16);
    for (const length of [0, 1, 15, 16, 17, 63, 64, 65, 255, 1000, 4096 + 3, 1024 * 1024 + 5]) {
      const key = randomBytes(32);
      const message = randomBytes(length);
      // A view at an odd offset, as blobs are inside pack buffers.
      const view = Buffer.concat([Buffer.alloc(1), message]).subarray(1);
      backend.mac(a, view, key);
      noble.mac(b, message, key);
      expect(a.toString('hex'), `length ${length}`).toBe(b.toString('hex'));
    }
  });

  it('falls back to noble when the binding is missing, incomplete or computes something else', () => {
    expect(choosePoly1305(() => { throw new Error('Cannot find module sodium-native'); }).name).toBe('noble');
    expect(choosePoly1305(() => ({})).name).toBe('noble');
    expect(choosePoly1305(() => undefined).name).toBe('noble');
    // A binding that writes a wrong tag (a miscompiled build) is not trusted.
    const wrong = { crypto_onetimeauth: (out: Uint8Array) => out.fill(7) };
    expect(choosePoly1305(() => wrong).name).toBe('noble');
    // One right on the RFC vector but wrong on longer input is caught by the comparison with noble.
    const s = sodium() as { crypto_onetimeauth: (o: Uint8Array, m: Uint8Array, k: Uint8Array) => void };
    const shortOnly = { crypto_onetimeauth: (o: Uint8Array, m: Uint8Array, k: Uint8Array) => (m.length > 100 ? o.fill(0) : s.crypto_onetimeauth(o, m, k)) };
    expect(choosePoly1305(() => shortOnly).name).toBe('noble');
    expect(choosePoly1305(sodium).name).toBe('libsodium');
  });
});

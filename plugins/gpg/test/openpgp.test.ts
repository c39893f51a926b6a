/**
 * The in-process OpenPGP encryption against stock gpg (Debian's gpg 2.2): what the tool writes,
 * gpg decrypts; what gpg writes for a passphrase, the tool decrypts; and anything altered, cut,
 * unprotected or not encrypted is refused, never passed on as good.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupError } from '@sutazai/backup-core';
import { cfbBackend, cfbStage, type CfbBackend } from '../src/cfb.js';
import { deriveKey, deriveKeyAsync, OpenPgpDecryptor, OpenPgpEncryptor, s2kCount } from '../src/openpgp.js';
import { stockGpg } from './keys.js';

const passphrase = Buffer.from('a long test passphrase');

/** Encrypts `data`, handing it to the encryptor in pieces of random sizes. */
function encrypt(data: Buffer, pass = passphrase, backend?: CfbBackend): Buffer {
  const encryptor = new OpenPgpEncryptor(pass, { backend });
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length; ) {
    const n = Math.min(data.length - offset, 1 + Math.floor(Math.random() * 300_000));
    const piece = encryptor.update(data.subarray(offset, offset + n));
    out.push(Buffer.from(piece));
    encryptor.release(piece);
    offset += n;
  }
  out.push(Buffer.from(encryptor.final()));
  return Buffer.concat(out);
}

/** Decrypts in pieces of `step` bytes; throws unless `end()` accepts it. */
function decrypt(message: Buffer, pass = passphrase, step = 4099, backend?: CfbBackend): Buffer {
  const decryptor = new OpenPgpDecryptor(pass, 'art', { backend });
  const out: Buffer[] = [];
  for (let offset = 0; offset < message.length; offset += step) {
    decryptor.update(message.subarray(offset, offset + step), (d) => out.push(Buffer.from(d)));
  }
  decryptor.end();
  return Buffer.concat(out);
}

function gpgEncrypt(data: Buffer, args: string[] = []): Buffer {
  const r = stockGpg(['--passphrase', passphrase.toString(), '--symmetric', '--output', '-', ...args], data);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

function caught(fn: () => unknown): BackupError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    return err as BackupError;
  }
  throw new Error('expected it to throw');
}

describe('in-process OpenPGP encryption', () => {
  it.each([0, 1, 511, 512, 513, 70_000, 3 * 1024 * 1024 + 7])('%i bytes: stock gpg decrypts what it writes (integrity checked), and so does the tool', (size) => {
    const data = randomBytes(size);
    const message = encrypt(data);
    expect(message.includes(data.subarray(0, Math.min(32, size))) && size >= 32).toBe(false);
    const stock = stockGpg(['--passphrase', passphrase.toString(), '--status-fd', '2', '--decrypt'], message);
    expect(stock.status, stock.stderr).toBe(0);
    expect(stock.stderr).toMatch(/GOODMDC/);
    expect(stock.stdout.equals(data)).toBe(true);
    expect(decrypt(message, passphrase, 1 + (size % 977)).equals(data)).toBe(true);
  });

  it("decrypts what stock gpg writes: streamed (partial lengths) or not, other ciphers and S2K hashes", () => {
    const data = randomBytes(1024 * 1024 + 3);
    // From a pipe gpg does not know the length: partial body lengths.
    expect(decrypt(gpgEncrypt(data, ['--compress-algo', 'none'])).equals(data)).toBe(true);
    // From a file it does: definite lengths.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'openpgp-test-'));
    try {
      writeFileSync(path.join(dir, 'data'), data);
      const fromFile = stockGpg(['--passphrase', passphrase.toString(), '--compress-algo', 'none', '--symmetric', '--output', '-', path.join(dir, 'data')], '');
      expect(fromFile.status, fromFile.stderr).toBe(0);
      expect(fromFile.stdout.subarray(15, 17).toString('hex'), 'SEIPD with a definite 5-octet length').toBe('d2ff');
      expect(decrypt(fromFile.stdout).equals(data)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // SHA-1 gives 20 bytes for a 32-byte key: the S2K needs two hash contexts.
    expect(decrypt(gpgEncrypt(data, ['--compress-algo', 'none', '--cipher-algo', 'AES256', '--s2k-digest-algo', 'SHA1'])).equals(data)).toBe(true);
    expect(decrypt(gpgEncrypt(data, ['--compress-algo', 'none', '--cipher-algo', 'AES', '--s2k-mode', '1'])).equals(data)).toBe(true);
    expect(decrypt(gpgEncrypt(data, ['--compress-algo', 'none', '--cipher-algo', 'AES192', '--s2k-digest-algo', 'SHA512'])).equals(data)).toBe(true);
  });

  it('a wrong passphrase is a configuration error, found at the start', () => {
    const message = encrypt(randomBytes(100_000));
    const decryptor = new OpenPgpDecryptor(Buffer.from('not the passphrase'), 'art');
    const err = caught(() => decryptor.update(message.subarray(0, 200), () => {}));
    expect(err.code).toBe('E_CONFIG');
    expect(err.message).toMatch(/^art: cannot decrypt: wrong passphrase \(encryption\.passphrase\)/);
  });

  it('any flipped bit or cut is refused: the data never comes out as good', () => {
    const data = randomBytes(200_000);
    const message = encrypt(data);
    for (const position of [20, 40, 1000, Math.floor(message.length / 2), message.length - 30, message.length - 21, message.length - 5, message.length - 1]) {
      const flipped = Buffer.from(message);
      flipped[position]! ^= 0x01;
      const err = caught(() => decrypt(flipped));
      expect(['E_INTEGRITY', 'E_CONFIG']).toContain(err.code);
      expect(err.message).toMatch(/^art: /);
    }
    for (const length of [0, 10, 30, 600, Math.floor(message.length / 2), message.length - 22, message.length - 1]) {
      const err = caught(() => decrypt(message.subarray(0, length)));
      expect(err.code).toBe('E_INTEGRITY');
      expect(err.message).toMatch(/truncated/);
    }
    // The last bytes are the encrypted MDC: the data decrypts, and only the integrity check fails.
    const mdc = Buffer.from(message);
    mdc[mdc.length - 3]! ^= 0x01;
    expect(caught(() => decrypt(mdc)).message).toBe('art: the integrity check (MDC) failed: the encrypted data was altered');
  });

  it('refuses data without integrity protection, data that is not encrypted, and anything appended', () => {
    const data = randomBytes(10_000);
    const unprotected = gpgEncrypt(data, ['--rfc2440', '--cipher-algo', 'AES256', '--compress-algo', 'none']);
    expect(caught(() => decrypt(unprotected)).message).toMatch(/not integrity protected \(no MDC\): refused/);
    const stored = stockGpg(['--store', '--output', '-'], data);
    expect(stored.status).toBe(0);
    expect(caught(() => decrypt(stored.stdout)).message).toMatch(/it is not encrypted: refused/);
    const appended = Buffer.concat([encrypt(data), encrypt(data)]);
    expect(caught(() => decrypt(appended)).message).toMatch(/data follows the encrypted packet/);
  });

  it('says how to read what it does not decrypt itself (gpg compressed inside)', () => {
    const compressed = gpgEncrypt(Buffer.alloc(10_000, 'a'));
    expect(caught(() => decrypt(compressed)).message).toMatch(/compressed packet.*decrypt it with `gpg --decrypt`/);
  });
});

describe('AES-CFB: the addon and node:crypto', () => {
  it('this setup built the addon, and it is what encrypts (scripts/build-native.mjs, run by npm run build)', () => {
    expect(cfbBackend()).toBe('addon');
  });

  it.each(['aes-128-cfb', 'aes-192-cfb', 'aes-256-cfb'])('%s: the addon computes what node:crypto does, in pieces of any size, in place or not', (algorithm) => {
    const key = randomBytes(Number(algorithm.split('-')[1]) / 8);
    const data = randomBytes(700_001);
    for (const decrypt of [false, true]) {
      const results = (['addon', 'node:crypto'] as const).map((backend, b) => {
        const stage = cfbStage(algorithm, key, decrypt, backend);
        const out = Buffer.alloc(data.length);
        const sizes = [1, 15, 16, 17, 31, 64 * 1024 - 1, 64 * 1024 + 1, 300_000];
        for (let offset = 0, i = 0; offset < data.length; i++) {
          const n = Math.min(data.length - offset, sizes[(i + b) % sizes.length]!);
          const src = data.subarray(offset, offset + n);
          if (i % 2) {
            const target = out.subarray(offset, offset + n);
            src.copy(target);
            stage.update(target, target);
          } else {
            stage.update(src, out.subarray(offset, offset + n));
          }
          offset += n;
        }
        return out;
      });
      expect(results[0]!.equals(results[1]!), `${decrypt ? 'decryption' : 'encryption'} differs`).toBe(true);
      expect(results[0]!.equals(data)).toBe(false);
    }
  });

  it('a message written with either is read by the other, and by stock gpg', () => {
    const data = randomBytes(2 * 1024 * 1024 + 5);
    for (const [writer, reader] of [['addon', 'node:crypto'], ['node:crypto', 'addon']] as const) {
      const message = encrypt(data, passphrase, writer);
      expect(decrypt(message, passphrase, 65_537, reader).equals(data), `${writer} -> ${reader}`).toBe(true);
      const stock = stockGpg(['--passphrase', passphrase.toString(), '--decrypt'], message);
      expect(stock.status, stock.stderr).toBe(0);
      expect(stock.stdout.equals(data)).toBe(true);
    }
  });

  it('the S2K off the main thread derives the keys the synchronous one does', async () => {
    for (const [passphrase, count] of [
      ['a long test passphrase', s2kCount(0xff)],
      ['short', 1024],
      ['x'.repeat(70_000), 65_536],
      ['pass', 3],
    ] as const) {
      const salt = randomBytes(8);
      const spec = { type: 3 as const, hash: 8, salt, count };
      const expected = deriveKey(Buffer.from(passphrase), spec, 32);
      // A fresh Buffer each time: the cache is per passphrase Buffer, so this really derives.
      const [a, b] = await Promise.all([deriveKeyAsync(Buffer.from(passphrase), spec, 32), deriveKeyAsync(Buffer.from(passphrase), spec, 16)]);
      expect(a.equals(expected), `${passphrase.slice(0, 10)} / ${count}`).toBe(true);
      expect(b.equals(expected.subarray(0, 16))).toBe(true);
    }
  });
});

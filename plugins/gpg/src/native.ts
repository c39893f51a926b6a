import { createCipheriv } from 'node:crypto';
import { createRequire } from 'node:module';

/** The plugin's addon (native/openpgp.c): AES-CFB into reused memory, the S2K off the main thread. */
export interface Addon {
  create(key: Uint8Array, decrypt: boolean): object;
  update(handle: object, src: Uint8Array, dst: Uint8Array): void;
  /** The iterated and salted S2K with SHA-256 over `count` octets of `data` (salt || passphrase), on libuv's thread pool. */
  s2kSha256(data: Uint8Array, count: number): Promise<Buffer>;
}

const BLOCK = 16;
let addon: Addon | null | undefined;

/**
 * The addon, if it was built, loads, and computes what node:crypto computes (AES-CFB checked once
 * on a few blocks, both directions); `SUTAZAI_BACKUP_GPG_ADDON=0` turns it off. Null otherwise:
 * callers then use node:crypto, with the same results.
 */
export function loadAddon(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env.SUTAZAI_BACKUP_GPG_ADDON === '0') return addon;
  let candidate: Addon;
  try {
    candidate = createRequire(import.meta.url)('../build/openpgp.node') as Addon;
  } catch {
    return addon;
  }
  try {
    const key = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
    const plain = Buffer.alloc(3 * BLOCK + 5, 0xa5);
    const expected = createCipheriv('aes-256-cfb', key, Buffer.alloc(BLOCK)).update(plain);
    const encrypted = Buffer.alloc(plain.length);
    candidate.update(candidate.create(key, false), plain, encrypted);
    const decrypted = Buffer.alloc(plain.length);
    candidate.update(candidate.create(key, true), encrypted, decrypted);
    if (encrypted.equals(expected) && decrypted.equals(plain) && typeof candidate.s2kSha256 === 'function') addon = candidate;
  } catch {
    // A build that does not work: node:crypto does the same.
  }
  return addon;
}

import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
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
let without = '';

/** How the plugin runs AES here, and why, for a debug line. */
export function addonNote(): string {
  return loadAddon() ? 'AES through the addon' : `AES through node:crypto: ${without}`;
}

/**
 * The addon, if it was built for this Node (the same NODE_MODULE_VERSION and OpenSSL: it calls
 * the OpenSSL inside Node, which Node-API does not keep stable, so a build from before a Node
 * upgrade is not even loaded), loads, and computes what node:crypto computes (AES-CFB checked once
 * on a few blocks, both directions); `SUTAZAI_BACKUP_GPG_ADDON=0` turns it off. Null otherwise:
 * callers then use node:crypto, with the same results.
 */
export function loadAddon(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env.SUTAZAI_BACKUP_GPG_ADDON === '0') {
    without = 'SUTAZAI_BACKUP_GPG_ADDON=0';
    return addon;
  }
  const mismatch = builtForOtherNode();
  if (mismatch) {
    without = mismatch;
    return addon;
  }
  let candidate: Addon;
  try {
    candidate = createRequire(import.meta.url)('../build/openpgp.node') as Addon;
  } catch (err) {
    without = `the addon does not load (${(err as Error).message.split('\n')[0]})`;
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
    else without = 'the addon computes other bytes than node:crypto';
  } catch (err) {
    // A build that does not work: node:crypto does the same.
    without = `the addon failed its check (${(err as Error).message})`;
  }
  return addon;
}

/** Why the built addon is not for this Node, or '' when it is. */
function builtForOtherNode(): string {
  let stamp: { node?: string; modules?: string; openssl?: string };
  try {
    stamp = JSON.parse(readFileSync(new URL('../build/openpgp.json', import.meta.url), 'utf8')) as typeof stamp;
  } catch {
    return 'the addon was not built (no compiler at install, or install scripts were skipped)';
  }
  if (stamp.modules === process.versions.modules && stamp.openssl === process.versions.openssl) return '';
  return `the addon was built for Node.js ${stamp.node} (OpenSSL ${stamp.openssl}), this is ${process.version} (OpenSSL ${process.versions.openssl}); \`npm rebuild @sutazai/backup-plugin-gpg\` builds it again`;
}

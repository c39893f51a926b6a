import { createHash, createHmac, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { BackupError, manifestAuthenticatedBytes, type Manifest } from '@sutazai/backup-core';
import { signDetached, verifyDetached, type Keyring } from './gpg.js';
import { deriveKeyAsync, s2kCount, S2K_COUNT_OCTET } from './openpgp.js';

/** The manifest's top-level field that holds the authenticator. */
export const AUTHENTICATION_FIELD = 'authentication';

/**
 * The MAC key comes from the passphrase through a slow key derivation, not a plain hash or HKDF:
 * anyone with the repository can try passphrases against a manifest's MAC, and that must cost at
 * least as much as trying them against the encrypted data itself. It is the artifacts' own S2K
 * (OpenPGP iterated and salted, SHA-256, 65011712 octets; `kdf: s2k-sha256`): a stronger one would
 * add time to every run and protect nothing, since the artifacts are the cheaper target.
 * Manifests written before (`kdf: scrypt`, N=2^15, r=8) are still checked. The parameters are
 * fixed, never read from a manifest (a forged manifest cannot make the check cheap or make it
 * exhaust memory).
 */
export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
export type MacKdf = 's2k-sha256' | 'scrypt';
const MAC_KDF: MacKdf = 's2k-sha256';
const SALT_CONTEXT = 'sutazai-backup manifest hmac v1\0';

/**
 * The KDF salt of a host's manifests: one per host, not per manifest, so that `verify --all`
 * derives the key once (the KDF is slow on purpose). It still keeps precomputed tables useless.
 */
export function macSalt(host: string): Buffer {
  return createHash('sha256').update(`${SALT_CONTEXT}${host}`).digest().subarray(0, 16);
}

export type ManifestAuthentication =
  | { method: 'gpg'; scheme: 'hmac-sha256'; kdf: MacKdf; salt: string; mac: string }
  | { method: 'gpg'; scheme: 'openpgp-signature'; signer: string; signature: string };

/** What the plugin can authenticate with. */
export interface Authenticator {
  passphrase: Buffer | undefined;
  /** The fingerprint of the key that signs (or whose signatures are accepted). */
  signer: string | undefined;
  /** Whether the secret part of `signer` is configured (backup side). */
  canSign: boolean;
  signingKeyPassphrase: Buffer | undefined;
  keyring: Keyring;
  /** Imports the signer's key. */
  ready(): Promise<void>;
}

const macKeys = new Map<string, Promise<Buffer>>();

function deriveMacKey(passphrase: Buffer, salt: Buffer, kdf: MacKdf): Promise<Buffer> {
  const kdfSalt = Buffer.concat([Buffer.from(SALT_CONTEXT), salt]);
  if (kdf === 's2k-sha256') {
    // ~40 ms of SHA-256: on libuv's thread pool through the addon (else on this thread), cached per passphrase and salt.
    return deriveKeyAsync(passphrase, { type: 3, hash: 8, salt: kdfSalt, count: s2kCount(S2K_COUNT_OCTET) }, 32);
  }
  const id = `${createHmac('sha256', passphrase).update(salt).digest('hex')}`;
  let key = macKeys.get(id);
  if (!key) {
    key = new Promise<Buffer>((resolve, reject) =>
      scrypt(passphrase, kdfSalt, 32, SCRYPT_PARAMS as ScryptOptions, (err, derived) => (err ? reject(err) : resolve(derived))),
    );
    macKeys.set(id, key);
  }
  return key;
}

/**
 * Starts deriving the MAC key of `host`'s manifests (off the main thread with the addon), so that
 * the commit finds it ready.
 */
export function prepareMacKey(passphrase: Buffer, host: string): void {
  deriveMacKey(passphrase, macSalt(host), MAC_KDF).catch(() => undefined);
}

/** The HMAC-SHA256 of a manifest (its canonical JSON without the authenticator), keyed from the passphrase. */
export async function manifestMac(manifest: Manifest, passphrase: Buffer, salt: Buffer, kdf: MacKdf = MAC_KDF): Promise<string> {
  const key = await deriveMacKey(passphrase, salt, kdf);
  return createHmac('sha256', key).update(manifestAuthenticatedBytes(manifest, [AUTHENTICATION_FIELD])).digest('hex');
}

/**
 * The authenticator to store in a manifest: an HMAC with a passphrase, a signature with a signing
 * key, or undefined (recipients without a signing key: unauthenticated, as the docs say).
 */
export async function authenticateManifest(
  manifest: Manifest,
  auth: Pick<Authenticator, 'passphrase' | 'signer' | 'canSign' | 'signingKeyPassphrase' | 'keyring' | 'ready'> | { passphrase: Buffer },
): Promise<ManifestAuthentication | undefined> {
  if (auth.passphrase) {
    const salt = macSalt(manifest.host);
    return { method: 'gpg', scheme: 'hmac-sha256', kdf: MAC_KDF, salt: salt.toString('base64'), mac: await manifestMac(manifest, auth.passphrase, salt, MAC_KDF) };
  }
  if ('canSign' in auth && auth.canSign && auth.signer) {
    await auth.ready();
    const signature = await signDetached(auth.keyring, auth.signer, auth.signingKeyPassphrase, manifestAuthenticatedBytes(manifest, [AUTHENTICATION_FIELD]));
    return { method: 'gpg', scheme: 'openpgp-signature', signer: auth.signer, signature };
  }
  return undefined;
}

/**
 * Checks a manifest read back against what this configuration can check, and throws E_INTEGRITY
 * when it fails: a wrong MAC or signature, or no authenticator where one is expected (stripped).
 * Resolves with what was checked, for the log.
 */
export async function checkManifestAuthentication(manifest: Manifest, auth: Authenticator, where: string): Promise<string> {
  const found = (manifest as Record<string, unknown>)[AUTHENTICATION_FIELD] as Partial<ManifestAuthentication> | undefined;
  const reject = (why: string) => new BackupError('E_INTEGRITY', `${where}: the manifest cannot be trusted: ${why}`);
  // Written under core's `integrity:` (before encryption was turned on): not this plugin's to check.
  if (found && found.method !== 'gpg') throw reject(`it is authenticated by ${String(found.method)}, not by the encryption (snapshots made before encryption was turned on cannot be checked)`);
  if (auth.passphrase) {
    if (!found) throw reject('it is not authenticated, but encryption with a passphrase is configured (it may have been replaced; snapshots from before encryption was turned on cannot be checked)');
    if (found.scheme !== 'hmac-sha256' || typeof found.salt !== 'string' || typeof found.mac !== 'string') {
      throw reject(`it is authenticated with ${String(found.scheme)}, not with the passphrase (HMAC)`);
    }
    if (found.kdf !== 's2k-sha256' && found.kdf !== 'scrypt') throw reject(`its HMAC key derivation ${String(found.kdf)} is unknown`);
    const expected = Buffer.from(await manifestMac(manifest, auth.passphrase, Buffer.from(found.salt, 'base64'), found.kdf), 'hex');
    const actual = Buffer.from(found.mac, 'hex');
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      throw reject('its HMAC does not match: it was altered, or encryption.passphrase is not the passphrase it was written with');
    }
    return 'authenticated (HMAC-SHA256)';
  }
  if (auth.signer) {
    if (!found) throw reject(`it is not signed, but manifests are expected to be signed by ${auth.signer} (it may have been replaced)`);
    if (found.scheme !== 'openpgp-signature' || typeof found.signature !== 'string') throw reject(`it is authenticated with ${String(found.scheme)}, not signed`);
    await auth.ready();
    const result = await verifyDetached(auth.keyring, auth.signer, found.signature, manifestAuthenticatedBytes(manifest, [AUTHENTICATION_FIELD]));
    if (!result.ok) throw reject(`its signature does not check: ${result.detail}`);
    return `authenticated (${result.detail})`;
  }
  if (found) {
    throw reject(
      found.scheme === 'openpgp-signature'
        ? `it is signed by ${String(found.signer)}, but no key to check it is configured (set encryption.signerPublicKey or signingKey)`
        : 'it is authenticated with a passphrase, but no passphrase is configured',
    );
  }
  return 'not authenticated (no passphrase or signing key configured)';
}

import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { BackupError } from '../errors.js';
import { MasterKey } from './crypto.js';

/**
 * Key files (`keys/<id>`, doc/design.rst "Keys, Encryption and MAC"): plain JSON holding scrypt's
 * parameters and salt, and the master key sealed under the key scrypt derives from a password.
 * The file's id is the sha256 of its bytes.
 */

export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/**
 * scrypt's cost for new keys: 32 MiB and about half a second here. restic calibrates its own to
 * 0.5 s of Go's scrypt; these are in the same range, and any reader honours what the file says.
 */
export const DEFAULT_KDF: KdfParams = { N: 32768, r: 8, p: 1 };

/** The most memory a key file may make scrypt use; a larger claim is refused as damage. */
const MAX_KDF_MEMORY = 1024 * 1024 * 1024;

export interface KeyFileJson {
  created: string;
  username: string;
  hostname: string;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  data: string;
}

export interface SealedKeyFile {
  id: string;
  bytes: Buffer;
}

/** Seals `master` under `password` as a new key file. */
export async function sealKeyFile(master: MasterKey, password: string, params: KdfParams = DEFAULT_KDF): Promise<SealedKeyFile> {
  checkKdf(params, 'the key parameters');
  const salt = randomBytes(64);
  const userKey = await deriveKey(password, salt, params);
  const data = userKey.seal(Buffer.from(JSON.stringify(master.toJson())));
  const json: KeyFileJson = {
    created: new Date().toISOString(),
    username: safeUsername(),
    hostname: hostname(),
    kdf: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    salt: salt.toString('base64'),
    data: data.toString('base64'),
  };
  const bytes = Buffer.from(JSON.stringify(json));
  return { id: createHash('sha256').update(bytes).digest('hex'), bytes };
}

/**
 * Keys this process opened, by key file (its sha256) and password: scrypt costs ~0.1-0.5 s, and
 * a daemon's runs, or one run's copies of a repository on several destinations (the same key
 * files), open the same key again. The password is compared, never hashed: a fast hash of it in
 * memory would be easier to attack than the key file's scrypt.
 */
const opened = new Map<string, { password: Buffer; key: MasterKey }>();
const OPENED_MAX = 16;

function samePassword(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The master key a key file holds, or undefined when `password` does not open it. `name`
 * (`keys/<id>`) names the file when it is not a key file at all.
 */
export async function openKeyFile(bytes: Buffer, password: string, name: string): Promise<MasterKey | undefined> {
  const fileId = createHash('sha256').update(bytes).digest('hex');
  const given = Buffer.from(password, 'utf8');
  const known = opened.get(fileId);
  if (known && samePassword(known.password, given)) return known.key;
  const key = await deriveAndOpen(bytes, password, name);
  if (key) {
    if (opened.size >= OPENED_MAX) opened.delete(opened.keys().next().value as string);
    opened.set(fileId, { password: given, key });
  }
  return key;
}

async function deriveAndOpen(bytes: Buffer, password: string, name: string): Promise<MasterKey | undefined> {
  let json: Partial<KeyFileJson>;
  try {
    json = JSON.parse(bytes.toString('utf8')) as Partial<KeyFileJson>;
  } catch {
    throw new BackupError('E_INTEGRITY', `${name}: is not JSON, so not a restic key file`, { details: { object: name } });
  }
  if (json.kdf !== 'scrypt' || typeof json.salt !== 'string' || typeof json.data !== 'string') {
    throw new BackupError('E_INTEGRITY', `${name}: is not a restic key file (want kdf "scrypt", salt and data)`, { details: { object: name } });
  }
  const params = { N: json.N, r: json.r, p: json.p } as KdfParams;
  checkKdf(params, name);
  const userKey = await deriveKey(password, Buffer.from(json.salt, 'base64'), params);
  const sealed = Buffer.from(json.data, 'base64');
  if (!userKey.verify(sealed)) return undefined;
  const plain = userKey.open(sealed, name);
  try {
    return MasterKey.fromJson(JSON.parse(plain.toString('utf8')));
  } catch (err) {
    throw new BackupError('E_INTEGRITY', `${name}: opens, but holds no valid master key`, { cause: err, details: { object: name } });
  }
}

function deriveKey(password: string, salt: Buffer, { N, r, p }: KdfParams): Promise<MasterKey> {
  return new Promise((resolve, reject) => {
    // OpenSSL needs 128·N·r bytes plus a little per lane; say so, or it refuses above 32 MiB.
    const maxmem = 128 * N * r + 128 * r * p + 1024 * 1024;
    scrypt(Buffer.from(password, 'utf8'), salt, 64, { N, r, p, maxmem }, (err, derived) => {
      if (err) reject(new BackupError('E_INTERNAL', `scrypt failed: ${err.message}`, { cause: err }));
      else resolve(MasterKey.fromBytes(derived));
    });
  });
}

function checkKdf({ N, r, p }: KdfParams, where: string): void {
  const ok =
    Number.isSafeInteger(N) &&
    Number.isSafeInteger(r) &&
    Number.isSafeInteger(p) &&
    N > 1 &&
    (N & (N - 1)) === 0 &&
    r >= 1 &&
    p >= 1 &&
    128 * N * r <= MAX_KDF_MEMORY &&
    r * p < 2 ** 30;
  if (!ok) {
    throw new BackupError('E_INTEGRITY', `${where}: scrypt parameters N=${N} r=${r} p=${p} are invalid or need more than 1 GiB`, {
      details: { object: where },
    });
  }
}

function safeUsername(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

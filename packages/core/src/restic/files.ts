import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { BackupError } from '../errors.js';
import type { MasterKey } from './crypto.js';
import { compressTransient, decompress } from './zstd.js';

/**
 * restic's unpacked files (config, snapshots/, index/, locks/): JSON sealed like a blob. In
 * repository version 2 the plaintext is a version byte 2 then zstd-compressed JSON, or, as
 * restic still accepts, plain JSON starting with `{` or `[`. The config is never compressed: a
 * reader learns the version from it.
 */

const COMPRESSED_JSON = 2;

export interface SealedFile {
  /** The storage id: the sha256 of the sealed bytes, which is also the file's name. */
  id: string;
  bytes: Buffer;
}

export function sealJson(key: MasterKey, value: unknown, compressed: boolean): SealedFile {
  const json = Buffer.from(JSON.stringify(value));
  let plaintext: Buffer = json;
  if (compressed) {
    const z = compressTransient(json);
    plaintext = Buffer.allocUnsafe(z.length + 1);
    plaintext[0] = COMPRESSED_JSON;
    z.copy(plaintext, 1);
  }
  const bytes = key.seal(plaintext);
  return { id: sha256Hex(bytes), bytes };
}

/**
 * Opens a sealed JSON file. `name` (`index/3f2a…`) names it in errors; `id`, when given, must be
 * the sha256 of the bytes, as it is for every file but the config.
 */
export function openJson(key: MasterKey, bytes: Buffer, name: string, options: { compressed: boolean; id?: string }): unknown {
  if (options.id !== undefined && sha256Hex(bytes) !== options.id) {
    throw new BackupError('E_INTEGRITY', `${name}: its content does not hash to its name (the file was altered or truncated)`, {
      details: { object: name },
    });
  }
  let plaintext = key.open(bytes, name);
  if (options.compressed && plaintext.length > 0 && plaintext[0] !== 0x7b && plaintext[0] !== 0x5b) {
    if (plaintext[0] !== COMPRESSED_JSON) {
      throw new BackupError('E_INTEGRITY', `${name}: unknown encoding version ${plaintext[0]}`, { details: { object: name } });
    }
    plaintext = decompress(plaintext.subarray(1), name);
  }
  try {
    return JSON.parse(plaintext.toString('utf8'));
  } catch (err) {
    throw new BackupError('E_INTEGRITY', `${name}: decrypts, but is not JSON`, { cause: err, details: { object: name } });
  }
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A stream's bytes in one buffer (one object of a destination). */
export async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) parts.push(chunk);
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

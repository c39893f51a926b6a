import { createHash } from 'node:crypto';
import { BackupError } from '../errors.js';
import { IV_SIZE, MAC_SIZE, type MasterKey } from './crypto.js';
import { compressTransient, decompressInto } from './zstd.js';

/**
 * A blob's way into a pack and back, the same on the main thread and on a crypto thread
 * (crypto-thread.ts): zstd when it makes the blob smaller, then sealed (IV ‖ CIPHERTEXT ‖ MAC);
 * opened, decompressed and checked against its id. Buffers are the caller's, so nothing is
 * allocated per blob but Node's cipher output slices.
 */

/**
 * Whether to compress a blob: never in version 1; tree blobs always, as restic 0.14 does (its
 * prune repacks tree packs holding an uncompressed blob, so anything else would be repacked on
 * every prune); data blobs when zstd makes them smaller (restic compresses all, but keeps
 * uncompressed data packs by default).
 */
export type Compression = 'never' | 'smaller' | 'always';

export function compressionFor(type: 'data' | 'tree', compress: boolean): Compression {
  if (!compress) return 'never';
  return type === 'tree' ? 'always' : 'smaller';
}

/** The bytes to seal for `plaintext`: zstd's frame or the plaintext (an empty blob is never compressed: 0 marks "stored"). */
export function compressBody(plaintext: Uint8Array, mode: Compression): { body: Uint8Array; uncompressedLength: number } {
  if (mode !== 'never' && plaintext.length > 0) {
    const z = compressTransient(plaintext);
    if (mode === 'always' || z.length < plaintext.length) return { body: z, uncompressedLength: plaintext.length };
  }
  return { body: plaintext, uncompressedLength: 0 };
}

export interface SealedStaged {
  /** IV ‖ CIPHERTEXT ‖ MAC, from byte 0 of the staging buffer. */
  sealedLength: number;
  /** The plaintext length when compressed, else 0 (as in a pack header). */
  uncompressedLength: number;
}

/**
 * Seals a staged blob: `buf` holds its IV at 0..16 and its plaintext at 16..16+length, and gets
 * the sealed blob from 0 (in place; `buf` has room for the MAC).
 */
export function sealStaged(key: MasterKey, buf: Buffer, length: number, mode: Compression): SealedStaged {
  const { body, uncompressedLength } = compressBody(buf.subarray(IV_SIZE, IV_SIZE + length), mode);
  return { sealedLength: key.sealAfterIv(body, buf, 0), uncompressedLength };
}

/** A growable buffer kept between calls (the decrypted zstd frame of a compressed blob). */
export class Scratch {
  #buf = Buffer.alloc(0);

  get(size: number): Buffer {
    if (this.#buf.length < size) this.#buf = Buffer.allocUnsafe(Math.max(size, 1024 * 1024));
    return this.#buf;
  }
}

/**
 * Opens a sealed blob into `out` (room for its plaintext), decompressing when
 * `uncompressedLength` is set, and checks that the plaintext hashes to `id` (32 bytes). Returns
 * the plaintext length. `what` names the blob in errors (`data blob 9c1e… in data/ab/ab12…`).
 */
export function openSealed(
  key: MasterKey,
  sealed: Uint8Array,
  uncompressedLength: number,
  id: Uint8Array,
  what: string,
  out: Uint8Array,
  scratch: Scratch,
): number {
  let length: number;
  if (uncompressedLength) {
    const frame = scratch.get(Math.max(0, sealed.length - IV_SIZE - MAC_SIZE));
    const n = key.openInto(sealed, what, frame, 0);
    decompressInto(frame.subarray(0, n), out, uncompressedLength, what);
    length = uncompressedLength;
  } else {
    length = key.openInto(sealed, what, out, 0);
  }
  const digest = createHash('sha256').update(out.subarray(0, length)).digest();
  if (!digest.equals(id)) throw new BackupError('E_INTEGRITY', `${what}: its content does not hash to its id`, { details: { object: what } });
  return length;
}

/** The plaintext length of a blob from its index entry. */
export function plaintextLengthOf(sealedLength: number, uncompressedLength: number): number {
  return uncompressedLength || sealedLength - IV_SIZE - MAC_SIZE;
}

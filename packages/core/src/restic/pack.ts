import { createHash } from 'node:crypto';
import { BackupError } from '../errors.js';
import { SEAL_OVERHEAD, type MasterKey } from './crypto.js';
import type { BlobType } from './store.js';
import { compressBody, compressionFor } from './blob-codec.js';

/**
 * Pack files (doc/design.rst "Pack Format"): sealed blobs back to back, then the sealed header
 * listing them, then the header's sealed length as a little-endian uint32. A header entry is a
 * type byte (0 data, 1 tree, 2 compressed data, 3 compressed tree), the sealed length, for
 * compressed blobs the plaintext length, and the blob's id. Offsets follow from the lengths, so
 * a pack has no gaps; a pack holds one blob type only (version 2 requires it).
 */

export interface PackedBlob {
  type: BlobType;
  /** The sha256 of the plaintext, 32 bytes. */
  id: Buffer;
  offset: number;
  /** Sealed length in the pack. */
  length: number;
  /** Plaintext length when the blob is compressed; 0 when stored as is. */
  uncompressedLength: number;
}

const ENTRY_STORED = 1 + 4 + 32;
const ENTRY_COMPRESSED = 1 + 4 + 4 + 32;
/** restic refuses headers above 16 MiB. */
export const MAX_HEADER_SIZE = 16 * 1024 * 1024;
/** What to read from a pack's end to get its header in one request, for packs of up to ~100 blobs. */
export const HEADER_TAIL_GUESS = 4 + SEAL_OVERHEAD + 100 * ENTRY_COMPRESSED;

export function headerEntrySize(blob: Pick<PackedBlob, 'uncompressedLength'>): number {
  return blob.uncompressedLength ? ENTRY_COMPRESSED : ENTRY_STORED;
}

/** A pack's file size as the index implies it (restic's check compares the two). */
export function packSizeOf(blobs: readonly Pick<PackedBlob, 'length' | 'uncompressedLength'>[]): number {
  let size = SEAL_OVERHEAD + 4;
  for (const b of blobs) size += b.length + headerEntrySize(b);
  return size;
}

/** Writes an IV for a blob or a pack header (tests: fixed sequences, one per kind). */
export type FillIv = (iv: Buffer, kind: 'blob' | 'header') => void;

export interface FinishedPack {
  /** The sha256 of the whole file: its name under data/. */
  id: string;
  /** The file; a view of the builder's buffer. */
  bytes: Buffer;
  blobs: PackedBlob[];
}

/**
 * Builds one pack in memory. The buffer is handed in (and back, after upload) so that packs reuse
 * their memory; it grows only when a blob does not fit.
 */
export class PackBuilder {
  readonly type: BlobType;
  readonly #key: MasterKey;
  #buf: Buffer;
  #size = 0;
  readonly #blobs: PackedBlob[] = [];
  readonly #fillIv: FillIv | undefined;

  /** `fillIv` writes each IV (random by default; tests pass fixed sequences). */
  constructor(key: MasterKey, type: BlobType, buffer: Buffer, fillIv?: FillIv) {
    this.#key = key;
    this.type = type;
    this.#buf = buffer;
    this.#fillIv = fillIv;
  }

  /** Bytes of sealed blobs so far. */
  get size(): number {
    return this.#size;
  }

  get count(): number {
    return this.#blobs.length;
  }

  get buffer(): Buffer {
    return this.#buf;
  }

  /**
   * Compresses (when `compress`: trees always, data when zstd makes it smaller), seals and appends a blob. Returns its
   * entry; the caller's `plaintext` is not kept.
   */
  add(id: Buffer, plaintext: Uint8Array, compress: boolean): PackedBlob {
    const { body, uncompressedLength } = compressBody(plaintext, compressionFor(this.type, compress));
    this.#reserve(body.length + SEAL_OVERHEAD);
    const length = this.#key.sealInto(body, this.#buf, this.#size, this.#fillIv && ((iv) => this.#fillIv!(iv, 'blob')));
    return this.#append(id, length, uncompressedLength);
  }

  /** Appends a blob sealed elsewhere (on a crypto thread): IV ‖ CIPHERTEXT ‖ MAC. */
  addSealed(id: Uint8Array, sealed: Uint8Array, uncompressedLength: number): PackedBlob {
    this.#reserve(sealed.length);
    this.#buf.set(sealed, this.#size);
    return this.#append(id, sealed.length, uncompressedLength);
  }

  #append(id: Uint8Array, length: number, uncompressedLength: number): PackedBlob {
    const blob: PackedBlob = { type: this.type, id: Buffer.from(id), offset: this.#size, length, uncompressedLength };
    this.#size += length;
    this.#blobs.push(blob);
    return blob;
  }

  /** The sealed blob at `blob.offset`, while the pack is still in memory. */
  sealedBlob(blob: PackedBlob): Buffer {
    return this.#buf.subarray(blob.offset, blob.offset + blob.length);
  }

  finish(): FinishedPack {
    const header = encodeHeader(this.#blobs);
    this.#reserve(header.length + SEAL_OVERHEAD + 4);
    const sealedLength = this.#key.sealInto(header, this.#buf, this.#size, this.#fillIv && ((iv) => this.#fillIv!(iv, 'header')));
    this.#buf.writeUInt32LE(sealedLength, this.#size + sealedLength);
    const end = this.#size + sealedLength + 4;
    const bytes = this.#buf.subarray(0, end);
    return { id: createHash('sha256').update(bytes).digest('hex'), bytes, blobs: this.#blobs };
  }

  #reserve(n: number): void {
    if (this.#size + n <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#size + n, Math.floor(this.#buf.length * 1.5)));
    this.#buf.copy(grown, 0, 0, this.#size);
    this.#buf = grown;
  }
}

export function encodeHeader(blobs: readonly PackedBlob[]): Buffer {
  let size = 0;
  for (const b of blobs) size += headerEntrySize(b);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const b of blobs) {
    const compressed = b.uncompressedLength !== 0;
    out[at] = (b.type === 'tree' ? 1 : 0) | (compressed ? 2 : 0);
    out.writeUInt32LE(b.length, at + 1);
    at += 5;
    if (compressed) {
      out.writeUInt32LE(b.uncompressedLength, at);
      at += 4;
    }
    b.id.copy(out, at);
    at += 32;
  }
  return out;
}

/** Parses a decrypted header; `name` (`data/ab/ab12…`) names the pack in errors. */
export function parseHeader(header: Buffer, name: string): PackedBlob[] {
  const blobs: PackedBlob[] = [];
  let offset = 0;
  for (let at = 0; at < header.length; ) {
    const kind = header[at] as number;
    if (kind > 3) throw damaged(name, `its header has an entry of unknown type ${kind}`);
    const compressed = (kind & 2) !== 0;
    const size = compressed ? ENTRY_COMPRESSED : ENTRY_STORED;
    if (at + size > header.length) throw damaged(name, 'its header ends inside an entry');
    const length = header.readUInt32LE(at + 1);
    const uncompressedLength = compressed ? header.readUInt32LE(at + 5) : 0;
    const id = Buffer.from(header.subarray(at + size - 32, at + size));
    blobs.push({ type: kind & 1 ? 'tree' : 'data', id, offset, length, uncompressedLength });
    offset += length;
    at += size;
  }
  return blobs;
}

/**
 * Reads a pack's header from the end of the file: `tail` is the file's last bytes (at least 4),
 * `fileSize` its size. Returns the blobs, or how many bytes from the end to read to get the whole
 * header when `tail` is too short.
 */
export function readHeader(key: MasterKey, tail: Buffer, fileSize: number, name: string): PackedBlob[] | { need: number } {
  if (fileSize < 4 + SEAL_OVERHEAD || tail.length < 4) throw damaged(name, `it is too small to be a pack (${fileSize} bytes)`);
  const headerLength = tail.readUInt32LE(tail.length - 4);
  if (headerLength < SEAL_OVERHEAD || headerLength > MAX_HEADER_SIZE || headerLength + 4 > fileSize) {
    throw damaged(name, `its header length ${headerLength} does not fit a ${fileSize}-byte pack (truncated or not a pack)`);
  }
  if (headerLength + 4 > tail.length) return { need: headerLength + 4 };
  const sealed = tail.subarray(tail.length - 4 - headerLength, tail.length - 4);
  const blobs = parseHeader(key.open(sealed, `header of ${name}`), name);
  const end = blobs.reduce((n, b) => n + b.length, 0);
  if (end + headerLength + 4 !== fileSize) {
    throw damaged(name, `its blobs and header make ${end + headerLength + 4} bytes, the file has ${fileSize}`);
  }
  return blobs;
}

function damaged(name: string, problem: string): BackupError {
  return new BackupError('E_INTEGRITY', `${name}: ${problem}`, { details: { object: name } });
}

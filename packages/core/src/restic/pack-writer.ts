import { randomFillSync } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Destination } from '../destination.js';
import { BackupError, isBackupError } from '../errors.js';
import type { BlobIndex, PackList } from './blob-index.js';
import { compressionFor } from './blob-codec.js';
import type { CryptoPool, SealResult } from './crypto-pool.js';
import { SEAL_OVERHEAD, type MasterKey } from './crypto.js';
import type { StoredPack } from './index-file.js';
import { PackBuilder, type FillIv } from './pack.js';
import type { BlobType } from './store.js';

/** restic 0.14's target pack size (its `--pack-size` default). */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
/** Packs uploading at once; each holds its buffer until the upload ends. */
export const DEFAULT_UPLOADS = 2;
const TREE_PACK_START = 1024 * 1024;
/** The pack number of a blob handed to a crypto thread and not yet in a pack. */
export const SEALING = 0xffffffff;
const STAGING_MIN = 1024 * 1024 + 64 * 1024;

export function packKey(id: string): string {
  return `data/${id.slice(0, 2)}/${id}`;
}

export interface PackWriterOptions {
  key: MasterKey;
  destination: Destination;
  index: BlobIndex;
  packs: PackList;
  packSize: number;
  uploads: number;
  /** Whether blobs may be compressed (repository version 2). */
  compress: boolean;
  /** Crypto threads that compress and seal; without, the calling thread does. */
  pool?: CryptoPool | undefined;
  /** Writes each IV (random by default); tests pass fixed sequences to compare packs. */
  fillIv?: FillIv;
}

/** A blob on a crypto thread, appended to its pack in the order blobs were added. */
interface Sealing {
  type: BlobType;
  id: Buffer;
  entry: number;
  result: Promise<SealResult>;
}

interface OpenPack {
  builder: PackBuilder;
  pack: number;
}

/**
 * Fills one pack per blob type and uploads each full pack in the background, at most `uploads`
 * at a time: `add` waits when that many are in flight, which bounds memory to about
 * (uploads + 2) packs. A blob is in the index from the moment it is added; until its pack is
 * uploaded, it is read from memory.
 *
 * With a crypto pool, `add` copies the blob into a staging buffer (IV first) and hands it to a
 * thread; sealed blobs are appended to their packs in the order they were added, so the packs
 * are the ones the calling thread would have made with the same IVs. Staging buffers are few
 * (two per thread and one more) and reused: `add` waits for one, which bounds memory and makes a
 * slow destination slow the reading down.
 */
export class PackWriter {
  readonly #o: PackWriterOptions;
  readonly #open: Partial<Record<BlobType, OpenPack>> = {};
  readonly #inMemory = new Map<number, PackBuilder>();
  readonly #uploads = new Set<Promise<void>>();
  readonly #pool: Buffer[] = [];
  #stored: StoredPack[] = [];
  #failure: BackupError | undefined;
  readonly #sealing: Sealing[] = [];
  #draining: Promise<void> | undefined;
  readonly #staging: Buffer[] = [];
  #stagingOut = 0;
  readonly #stagingMax: number;
  #wake: (() => void)[] = [];

  constructor(options: PackWriterOptions) {
    this.#o = options;
    this.#stagingMax = options.pool ? options.pool.size * 2 + 1 : 0;
  }

  /** Packs, blobs and bytes waiting in memory (for tests and progress). */
  get pendingPacks(): number {
    return this.#inMemory.size;
  }

  /** Blobs on the crypto threads, not yet in a pack. */
  get sealing(): number {
    return this.#sealing.length;
  }

  async add(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<void> {
    this.#throwIfFailed();
    if (this.#o.pool) return this.#stage(this.#o.pool, type, id, plaintext);
    const open = (this.#open[type] ??= this.#start(type));
    const blob = open.builder.add(id, plaintext, this.#o.compress);
    this.#o.index.add(type, id, { pack: open.pack, offset: blob.offset, length: blob.length, uncompressedLength: blob.uncompressedLength });
    if (open.builder.size >= this.#o.packSize) {
      delete this.#open[type];
      await this.#upload(open);
    }
  }

  /** Waits until a blob that is being sealed (its pack SEALING in the index) is in a pack. */
  async sealed(entry: number): Promise<void> {
    while (this.#o.index.location(entry).pack === SEALING) {
      this.#throwIfFailed();
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
  }

  async #stage(pool: CryptoPool, type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<void> {
    // In the index at once (with its plaintext length), so a second save of the blob is a no-op.
    this.#o.index.add(type, id, { pack: SEALING, offset: 0, length: plaintext.length + SEAL_OVERHEAD, uncompressedLength: 0 });
    const entry = this.#o.index.lookup(type, id);
    const copy = Buffer.from(id);
    const buffer = await this.#stagingBuffer(plaintext.length + SEAL_OVERHEAD);
    (this.#o.fillIv ?? randomIv)(buffer.subarray(0, 16), 'blob');
    buffer.set(plaintext, 16);
    const result = pool.seal(this.#o.key, buffer, plaintext.length, compressionFor(type, this.#o.compress));
    result.catch(() => {});
    this.#sealing.push({ type, id: copy, entry, result });
    this.#kick();
  }

  /** Starts appending sealed blobs unless that runs; it restarts itself for blobs added as it ended. */
  #kick(): void {
    if (this.#draining || !this.#sealing.length) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      if (!this.#failure) this.#kick();
    });
  }

  /** A staging buffer of at least `size` bytes; waits while all are with the threads. */
  async #stagingBuffer(size: number): Promise<Buffer> {
    while (!this.#staging.length && this.#stagingOut >= this.#stagingMax) {
      this.#throwIfFailed();
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
    this.#throwIfFailed();
    this.#stagingOut++;
    const free = this.#staging.pop();
    if (free && free.length >= size) return free;
    return Buffer.allocUnsafeSlow(Math.max(STAGING_MIN, Math.ceil(size / 65536) * 65536));
  }

  #wakeAll(): void {
    const waiting = this.#wake;
    this.#wake = [];
    for (const w of waiting) w();
  }

  /** Appends sealed blobs to their packs in order, and uploads full packs. */
  async #drain(): Promise<void> {
    try {
      while (this.#sealing.length) {
        const job = this.#sealing[0] as Sealing;
        const { buffer, sealedLength, uncompressedLength } = await job.result;
        this.#sealing.shift();
        const open = (this.#open[job.type] ??= this.#start(job.type));
        const blob = open.builder.addSealed(job.id, buffer.subarray(0, sealedLength), uncompressedLength);
        this.#o.index.setLocation(job.entry, { pack: open.pack, offset: blob.offset, length: blob.length, uncompressedLength });
        this.#staging.push(buffer);
        this.#stagingOut--;
        this.#wakeAll();
        if (open.builder.size >= this.#o.packSize) {
          delete this.#open[job.type];
          await this.#upload(open);
        }
      }
    } catch (err) {
      this.#failure ??= isBackupError(err) ? err : new BackupError('E_INTERNAL', `sealing a blob failed: ${(err as Error).message}`, { cause: err });
      this.#wakeAll();
    }
  }

  /** A blob's sealed bytes while its pack is still in memory (a copy), else undefined. */
  sealedInMemory(pack: number, offset: number, length: number): Buffer | undefined {
    const builder = this.#inMemory.get(pack);
    return builder && Buffer.from(builder.buffer.subarray(offset, offset + length));
  }

  /** Uploads the packs being filled, waits for every upload, and hands over the packs not yet indexed. */
  async flush(): Promise<StoredPack[]> {
    while (this.#draining) await this.#draining;
    this.#throwIfFailed();
    for (const type of ['data', 'tree'] as const) {
      const open = this.#open[type];
      if (open) {
        delete this.#open[type];
        await this.#upload(open);
      }
    }
    while (this.#uploads.size) await Promise.all(this.#uploads);
    this.#throwIfFailed();
    const stored = this.#stored;
    this.#stored = [];
    return stored;
  }

  /** Gives back packs `flush` handed over whose index could not be written, for the next flush. */
  unflush(packs: StoredPack[]): void {
    this.#stored.unshift(...packs);
  }

  #start(type: BlobType): OpenPack {
    const buffer = type === 'data' ? (this.#pool.pop() ?? Buffer.allocUnsafe(this.#o.packSize + 64 * 1024)) : Buffer.allocUnsafe(TREE_PACK_START);
    const pack = this.#o.packs.reserve();
    const builder = new PackBuilder(this.#o.key, type, buffer, this.#o.fillIv);
    this.#inMemory.set(pack, builder);
    return { builder, pack };
  }

  async #upload({ builder, pack }: OpenPack): Promise<void> {
    const { id, bytes, blobs } = builder.finish();
    this.#o.packs.name(pack, id);
    const key = packKey(id);
    const body = Readable.from([bytes], { objectMode: false });
    const task = this.#o.destination
      .put(key, body, { size: bytes.length, sha256: id })
      .then(
        () => {
          this.#stored.push({ id, blobs });
          this.#inMemory.delete(pack);
          const buffer = builder.buffer;
          if (builder.type === 'data' && buffer.length <= 2 * this.#o.packSize) this.#pool.push(buffer);
        },
        (err: unknown) => {
          this.#failure ??= isBackupError(err)
            ? err
            : new BackupError('E_DESTINATION', `${this.#o.destination.description}: uploading ${key} failed: ${(err as Error).message}`, { cause: err });
          this.#wakeAll();
        },
      )
      .finally(() => this.#uploads.delete(task));
    this.#uploads.add(task);
    while (this.#uploads.size >= this.#o.uploads) await Promise.race(this.#uploads);
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }
}

function randomIv(iv: Buffer): void {
  randomFillSync(iv);
}

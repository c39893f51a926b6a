import { Readable } from 'node:stream';
import type { Destination } from '../destination.js';
import { BackupError, isBackupError } from '../errors.js';
import type { BlobIndex, PackList } from './blob-index.js';
import type { MasterKey } from './crypto.js';
import type { StoredPack } from './index-file.js';
import { PackBuilder } from './pack.js';
import type { BlobType } from './store.js';

/** restic 0.14's target pack size (its `--pack-size` default). */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
/** Packs uploading at once; each holds its buffer until the upload ends. */
export const DEFAULT_UPLOADS = 2;
const TREE_PACK_START = 1024 * 1024;

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
 */
export class PackWriter {
  readonly #o: PackWriterOptions;
  readonly #open: Partial<Record<BlobType, OpenPack>> = {};
  readonly #inMemory = new Map<number, PackBuilder>();
  readonly #uploads = new Set<Promise<void>>();
  readonly #pool: Buffer[] = [];
  #stored: StoredPack[] = [];
  #failure: BackupError | undefined;

  constructor(options: PackWriterOptions) {
    this.#o = options;
  }

  /** Packs, blobs and bytes waiting in memory (for tests and progress). */
  get pendingPacks(): number {
    return this.#inMemory.size;
  }

  async add(type: BlobType, id: Buffer, plaintext: Uint8Array): Promise<void> {
    this.#throwIfFailed();
    const open = (this.#open[type] ??= this.#start(type));
    const blob = open.builder.add(id, plaintext, this.#o.compress);
    this.#o.index.add(type, id, { pack: open.pack, offset: blob.offset, length: blob.length, uncompressedLength: blob.uncompressedLength });
    if (open.builder.size >= this.#o.packSize) {
      delete this.#open[type];
      await this.#upload(open);
    }
  }

  /** A blob's sealed bytes while its pack is still in memory (a copy), else undefined. */
  sealedInMemory(pack: number, offset: number, length: number): Buffer | undefined {
    const builder = this.#inMemory.get(pack);
    return builder && Buffer.from(builder.buffer.subarray(offset, offset + length));
  }

  /** Uploads the packs being filled, waits for every upload, and hands over the packs not yet indexed. */
  async flush(): Promise<StoredPack[]> {
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
    const builder = new PackBuilder(this.#o.key, type, buffer);
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

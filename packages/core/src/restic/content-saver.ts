import { constants, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { BackupError } from '../errors.js';
import { ChunkReader, fileSource, streamSource, type ByteSource } from './chunk-reader.js';
import type { ContentChunker } from './chunker.js';
import { Pool } from './slots.js';
import type { BlobStore } from './store.js';
import { blobId } from './tree.js';

/** What a run added and reused, for its report and for measuring dedup. */
export interface ArchiveStats {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirs: number;
  /** Data and tree blobs the repository did not hold, and their plaintext bytes. */
  dataBlobs: number;
  treeBlobs: number;
  bytesAdded: number;
  /** Bytes read from files and streams (unmodified files are not read). */
  bytesRead: number;
  /** Bytes of all files in the snapshot, read or reused. */
  bytesTotal: number;
}

export function emptyStats(): ArchiveStats {
  return { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, dataBlobs: 0, treeBlobs: 0, bytesAdded: 0, bytesRead: 0, bytesTotal: 0 };
}

export interface SavedContent {
  content: string[];
  size: number;
}

export interface ContentSaverOptions {
  /** Files and streams chunked at once, each with its own buffers (~2 × 12 MiB). Default 2. */
  lanes?: number;
  /** Small files (under the chunker's minimum, one blob each) read at once. Default 8. */
  smallFiles?: number;
}

// O_NOATIME keeps reading from touching the source's atimes; only the owner or root may ask.
const NOATIME = process.getuid?.() === 0 ? (constants.O_NOATIME ?? 0) : 0;
// O_NONBLOCK: a file swapped for a FIFO after lstat must not hang the run on open.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | NOATIME;

/**
 * Turns file and stream content into data blobs: small files in one read into a pooled buffer,
 * the rest through ChunkReader lanes. Blobs are handed to the store as views into the pooled
 * buffers; a buffer is reused once the store has taken them.
 */
export class ContentSaver {
  readonly #store: BlobStore;
  readonly #stats: ArchiveStats;
  readonly #minSize: number;
  readonly #lanes: Pool<ChunkReader>;
  readonly #small: Pool<Buffer>;

  constructor(store: BlobStore, makeChunker: () => ContentChunker, stats: ArchiveStats, options: ContentSaverOptions = {}) {
    this.#store = store;
    this.#stats = stats;
    const probe = makeChunker();
    this.#minSize = probe.minSize;
    this.#lanes = new Pool(options.lanes ?? 2, () => new ChunkReader(makeChunker()));
    this.#small = new Pool(options.smallFiles ?? 8, () => Buffer.allocUnsafe(this.#minSize));
  }

  /** Whether the repository holds every one of these data blobs (a parent's file can be reused). */
  holdsAll(ids: string[]): boolean {
    return ids.every((id) => this.#store.has('data', id));
  }

  /** Hands a data blob to the store unless it holds it; resolves once the bytes are taken. */
  saveBlob(data: Buffer, id: string): Promise<void> | undefined {
    if (this.#store.has('data', id)) return undefined;
    this.#stats.dataBlobs++;
    this.#stats.bytesAdded += data.length;
    return this.#store.save('data', id, data);
  }

  async #chunked(source: ByteSource): Promise<SavedContent> {
    const content: string[] = [];
    const size = await this.#lanes.use((reader) =>
      reader.read(source, (chunk, id) => {
        content.push(id);
        return this.saveBlob(chunk, id);
      }),
    );
    this.#stats.bytesRead += size;
    return { content, size };
  }

  /** A stream's content (a database dump), read to its end. */
  saveStream(stream: Readable): Promise<SavedContent> {
    return this.#chunked(streamSource(stream));
  }

  /**
   * Opens a regular file without following links and saves its content. Returns the content
   * and the open file's fstat (the metadata that goes with the bytes read), or throws E_SOURCE
   * when the path is no longer a regular file.
   */
  async saveFile(path: string | Buffer): Promise<SavedContent & { stat: BigIntStats }> {
    const handle = await open(path, OPEN_FLAGS);
    try {
      const stat = await handle.stat({ bigint: true });
      if (!stat.isFile()) {
        throw new BackupError('E_SOURCE', `${path.toString()}: changed from a file to something else while it was backed up; refusing to read it`);
      }
      const saved = stat.size < BigInt(this.#minSize) ? await this.#small.use((buf) => this.#whole(handle, buf)) : undefined;
      return { ...(saved ?? (await this.#chunked(fileSource(handle)))), stat };
    } finally {
      await handle.close();
    }
  }

  /** A file under the minimum chunk size is one blob: read it whole, or undefined if it grew. */
  async #whole(handle: FileHandle, buf: Buffer): Promise<SavedContent | undefined> {
    let n = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) return undefined;
    }
    this.#stats.bytesRead += n;
    if (n === 0) return { content: [], size: 0 };
    const view = buf.subarray(0, n);
    const id = blobId(view);
    await this.saveBlob(view, id);
    return { content: [id], size: n };
  }
}

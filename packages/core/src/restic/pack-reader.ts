import { getRange, type Destination } from '../destination.js';
import { BackupError } from '../errors.js';
import { openSealed, Scratch } from './blob-codec.js';
import type { CryptoPool } from './crypto-pool.js';
import type { MasterKey } from './crypto.js';
import { packKey } from './pack-writer.js';
import { readAll } from './files.js';
import type { BlobId, BlobType } from './store.js';

/**
 * Loads many blobs the way restic's restorer does: grouped by pack, each pack read once, in
 * ranges that cover nearby blobs (a gap of up to GAP bytes is read rather than asked for again),
 * a few ranges read ahead while the blobs of the current one are opened (on the crypto threads
 * when there are). Memory: READ_AHEAD + 1 ranges of at most MAX_RANGE bytes, and the staging
 * buffers of blobs being opened.
 */

/** Called once per distinct blob, in pack order; `plaintext` is valid until the returned promise resolves. */
export type BlobSink = (id: BlobId, plaintext: Buffer) => Promise<void> | void;

export interface PackedLocation {
  /** The pack's id, or undefined while it is being written (the blob is then loaded alone). */
  pack: string | undefined;
  offset: number;
  length: number;
  uncompressedLength: number;
}

export interface PackSource {
  destination: Destination;
  key: MasterKey;
  pool: CryptoPool | undefined;
  /** Where a blob is; throws E_NOT_FOUND naming it when it is not in the index. */
  locate(type: BlobType, id: BlobId): Promise<PackedLocation>;
  /** One blob alone (from a pack still in memory). */
  load(type: BlobType, id: BlobId): Promise<Buffer>;
}

const GAP = 1024 * 1024;
const MAX_RANGE = 16 * 1024 * 1024;
const READ_AHEAD = 2;
const STAGING_MIN = 1024 * 1024 + 64 * 1024;

interface Wanted {
  id: BlobId;
  offset: number;
  length: number;
  uncompressedLength: number;
}

interface Range {
  pack: string;
  start: number;
  end: number;
  blobs: Wanted[];
}

export async function loadInPackOrder(source: PackSource, type: BlobType, ids: Iterable<BlobId>, onBlob: BlobSink): Promise<void> {
  const byPack = new Map<string, Wanted[]>();
  const alone: BlobId[] = [];
  for (const id of new Set(ids)) {
    const where = await source.locate(type, id);
    if (where.pack === undefined) alone.push(id);
    else {
      let list = byPack.get(where.pack);
      if (!list) byPack.set(where.pack, (list = []));
      list.push({ id, offset: where.offset, length: where.length, uncompressedLength: where.uncompressedLength });
    }
  }
  for (const id of alone) await onBlob(id, await source.load(type, id));
  const ranges = planRanges(byPack);
  const opener = new BlobOpener(source.key, source.pool, onBlob);
  const reads: Promise<Buffer>[] = [];
  let next = 0;
  const readNext = () => {
    const range = ranges[next++];
    if (!range) return;
    const read = getRange(source.destination, packKey(range.pack), range.start, range.end - range.start).then(readAll);
    read.catch(() => {});
    reads.push(read);
  };
  try {
    for (let i = 0; i < READ_AHEAD; i++) readNext();
    for (const range of ranges) {
      const bytes = await (reads.shift() as Promise<Buffer>);
      readNext();
      await opener.openRange(type, range, bytes);
    }
  } catch (err) {
    // No blob may still be written once this fails: the caller removes what was restored.
    await opener.finish().catch(() => {});
    throw err;
  }
  await opener.finish();
}

/** Ranges per pack, in the order of the packs' first appearance, each blob in exactly one. */
function planRanges(byPack: Map<string, Wanted[]>): Range[] {
  const ranges: Range[] = [];
  for (const [pack, blobs] of byPack) {
    blobs.sort((a, b) => a.offset - b.offset);
    let range: Range | undefined;
    for (const b of blobs) {
      const end = b.offset + b.length;
      if (!range || b.offset - range.end > GAP || end - range.start > MAX_RANGE) {
        range = { pack, start: b.offset, end, blobs: [] };
        ranges.push(range);
      }
      range.end = Math.max(range.end, end);
      range.blobs.push(b);
    }
  }
  return ranges;
}

/** Opens blobs on the crypto threads (a few staging buffers in flight) or on this thread. */
class BlobOpener {
  readonly #key: MasterKey;
  readonly #pool: CryptoPool | undefined;
  readonly #onBlob: BlobSink;
  readonly #scratch = new Scratch();
  readonly #plain = new Scratch();
  readonly #free: Buffer[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #max: number;
  #failure: unknown;

  constructor(key: MasterKey, pool: CryptoPool | undefined, onBlob: BlobSink) {
    this.#key = key;
    this.#pool = pool;
    this.#onBlob = onBlob;
    this.#max = pool ? pool.size * 2 + 1 : 1;
  }

  async openRange(type: BlobType, range: Range, bytes: Buffer): Promise<void> {
    const name = packKey(range.pack);
    for (const b of range.blobs) {
      this.#throwIfFailed();
      const what = `${type} blob ${b.id} in ${name}`;
      const sealed = bytes.subarray(b.offset - range.start, b.offset - range.start + b.length);
      if (sealed.length !== b.length) {
        throw new BackupError('E_INTEGRITY', `${what}: the pack ends before the blob (got ${sealed.length} of ${b.length} bytes)`, { details: { object: what } });
      }
      const id = Buffer.from(b.id, 'hex');
      if (this.#pool) await this.#dispatch(this.#pool, b, sealed, id, what);
      else {
        const plain = this.#plain.get(b.uncompressedLength || b.length);
        const n = openSealed(this.#key, sealed, b.uncompressedLength, id, what, plain, this.#scratch);
        await this.#onBlob(b.id, plain.subarray(0, n));
      }
    }
  }

  async #dispatch(pool: CryptoPool, b: Wanted, sealed: Buffer, id: Buffer, what: string): Promise<void> {
    while (this.#inFlight.size >= this.#max) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
    const size = Math.max(b.length, b.uncompressedLength);
    let buffer = this.#free.pop();
    if (!buffer || buffer.length < size) buffer = Buffer.allocUnsafeSlow(Math.max(STAGING_MIN, Math.ceil(size / 65536) * 65536));
    buffer.set(sealed, 0);
    const task = pool
      .open(this.#key, buffer, b.length, b.uncompressedLength, id, what)
      .then(async (r) => {
        try {
          await this.#onBlob(b.id, r.buffer.subarray(0, r.length));
        } finally {
          this.#free.push(r.buffer);
        }
      })
      .catch((err: unknown) => {
        this.#failure ??= err;
      })
      .finally(() => this.#inFlight.delete(task));
    this.#inFlight.add(task);
  }

  /** Waits for every blob in flight; throws the first failure. */
  async finish(): Promise<void> {
    while (this.#inFlight.size) await Promise.all(this.#inFlight);
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }
}

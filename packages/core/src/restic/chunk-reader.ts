import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ContentChunker } from './chunker.js';

/** Where chunk bytes come from: a file, or a stream (a database dump). */
export interface ByteSource {
  /** Reads up to `length` bytes into `buf` at `offset`; 0 at the end. */
  read(buf: Buffer, offset: number, length: number): Promise<number>;
}

export function fileSource(handle: FileHandle, position = 0): ByteSource {
  let at = position;
  return {
    async read(buf, offset, length) {
      const { bytesRead } = await handle.read(buf, offset, length, at);
      at += bytesRead;
      return bytesRead;
    },
  };
}

/** A stream as a ByteSource: its chunks are copied into the reader's buffers (streams own theirs). */
export function streamSource(stream: Readable): ByteSource {
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let pending: Buffer | undefined;
  let done = false;
  return {
    async read(buf, offset, length) {
      while (!pending?.length && !done) {
        const next = await chunks.next();
        if (next.done) done = true;
        else pending = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      }
      if (!pending?.length) return 0;
      const n = pending.copy(buf, offset, 0, Math.min(length, pending.length));
      pending = pending.subarray(n);
      return n;
    },
  };
}

/**
 * Takes each chunk (a view into a reused buffer) with its id; the view must not be kept past
 * the returned promise, which resolves once its bytes are taken (BlobStore.save's contract).
 */
export type ChunkHandler = (chunk: Buffer, id: string) => Promise<void> | void;

interface Slot {
  buf: Buffer;
  /** Handlers still holding views into buf. */
  holders: Promise<void>[];
}

/**
 * Cuts a source into content-defined chunks without copying them: each buffer ("slot") has room
 * for a carried-over partial chunk (up to maxSize) before a read region, and while one slot's
 * chunks are hashed and handed off, the next slot is being read. A slot is read into again only
 * when every handler of its chunks has resolved. Memory: `slots` × (maxSize + readSize).
 */
export class ChunkReader {
  readonly #chunker: ContentChunker;
  readonly #slots: Slot[];
  readonly #carryRoom: number;
  readonly #readSize: number;
  #busy = false;

  constructor(chunker: ContentChunker, options: { readSize?: number; slots?: number } = {}) {
    this.#chunker = chunker;
    this.#carryRoom = chunker.maxSize;
    this.#readSize = options.readSize ?? 4 * 1024 * 1024;
    const count = Math.max(2, options.slots ?? 2);
    this.#slots = Array.from({ length: count }, () => ({ buf: Buffer.allocUnsafe(this.#carryRoom + this.#readSize), holders: [] }));
  }

  async #take(index: number): Promise<Slot> {
    const slot = this.#slots[index % this.#slots.length]!;
    const holders = slot.holders;
    slot.holders = [];
    await Promise.all(holders);
    return slot;
  }

  async #fill(slot: Slot, source: ByteSource): Promise<number> {
    let n = 0;
    while (n < this.#readSize) {
      const got = await source.read(slot.buf, this.#carryRoom + n, this.#readSize - n);
      if (got === 0) break;
      n += got;
    }
    return n;
  }

  /**
   * Reads `source` to its end, calling `onChunk` for each chunk in order, and returns the number
   * of bytes read. Resolves after every handler has.
   */
  async read(source: ByteSource, onChunk: ChunkHandler): Promise<number> {
    if (this.#busy) throw new Error('ChunkReader.read is already running: use one reader per source at a time');
    this.#busy = true;
    try {
      return await this.#read(source, onChunk);
    } finally {
      this.#busy = false;
    }
  }

  async #read(source: ByteSource, onChunk: ChunkHandler): Promise<number> {
    const chunker = this.#chunker;
    chunker.reset();
    let index = 0;
    let slot = await this.#take(index);
    let filling = this.#fill(slot, source);
    let carry: { slot: Slot; start: number; end: number } | undefined;
    let total = 0;
    const emit = (s: Slot, start: number, end: number) => {
      const view = s.buf.subarray(start, end);
      const held = onChunk(view, createHash('sha256').update(view).digest('hex'));
      if (held) {
        // Awaited when the slot is reused; the catch only keeps an early failure from going unhandled.
        held.catch(() => {});
        s.holders.push(held);
      }
    };
    for (;;) {
      const n = await filling;
      total += n;
      const eof = n < this.#readSize;
      let start = this.#carryRoom;
      if (carry) {
        const length = carry.end - carry.start;
        start -= length;
        carry.slot.buf.copy(slot.buf, start, carry.start, carry.end);
        carry = undefined;
      }
      // Read ahead into the next slot while this one is cut and hashed.
      let next: Slot | undefined;
      if (!eof) {
        next = await this.#take(++index);
        filling = this.#fill(next, source);
        // Awaited on the next turn; if cutting this slot fails first, its failure is not news.
        filling.catch(() => {});
      }
      const end = this.#carryRoom + n;
      let chunkStart = start;
      let scan = this.#carryRoom;
      while (scan < end) {
        const cut = chunker.findCut(slot.buf, scan, end);
        if (cut < 0) break;
        emit(slot, chunkStart, cut);
        chunkStart = scan = cut;
      }
      if (eof || !next) {
        if (chunkStart < end) emit(slot, chunkStart, end);
        break;
      }
      if (chunkStart < end) carry = { slot, start: chunkStart, end };
      slot = next;
    }
    await Promise.all(this.#slots.flatMap((s) => s.holders));
    return total;
  }
}

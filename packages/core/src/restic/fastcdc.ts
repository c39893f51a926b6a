import { createHash } from 'node:crypto';
import { MAX_CHUNK, MIN_CHUNK, type ContentChunker } from './chunker.js';

/**
 * FastCDC (Xia et al., 2016): a gear hash (shift, add a byte's random word) cut where its top
 * bits are zero, with a harder pattern before the normal size and an easier one after it, so
 * sizes cluster around it. The archiver's chunker: in JavaScript it cuts ~5× faster than
 * restic's Rabin fingerprint (bench/restic-chunker.mjs) and finds as much duplication. The gear
 * table comes from a repository secret (the config's chunker_polynomial, which every writer of
 * the repository shares), so chunk sizes do not reveal known content: restic's reason for a
 * random polynomial.
 */
export class FastCdcChunker implements ContentChunker {
  readonly minSize: number;
  readonly maxSize: number;
  readonly normalSize: number;
  readonly #gear = new Int32Array(256);
  /** Top-bit shifts: cut where `hash >>> shift === 0`. */
  readonly #shiftHard: number;
  readonly #shiftEasy: number;
  #hash = 0;
  #count = 0;

  constructor(seed: string | Uint8Array, sizes: { min?: number; normal?: number; max?: number } = {}) {
    this.minSize = sizes.min ?? MIN_CHUNK;
    this.maxSize = sizes.max ?? MAX_CHUNK;
    this.normalSize = sizes.normal ?? 1024 * 1024;
    // After minSize a cut is expected every 2^bits bytes: 2 bits harder before the normal size,
    // 2 easier after it (FastCDC's normalization level 2).
    const bits = Math.round(Math.log2(this.normalSize - this.minSize));
    this.#shiftHard = 32 - (bits + 2);
    this.#shiftEasy = 32 - (bits - 2);
    for (let block = 0; block < 32; block++) {
      const words = createHash('sha256').update(seed).update(`gear ${block}`).digest();
      for (let i = 0; i < 8; i++) this.#gear[block * 8 + i] = words.readUInt32LE(i * 4);
    }
  }

  reset(): void {
    this.#hash = 0;
    this.#count = 0;
  }

  findCut(buf: Uint8Array, start: number, end: number): number {
    // Where, in buf, the chunk reaches the minimum, normal and maximum sizes.
    const minAt = start + this.minSize - this.#count;
    const normalAt = start + this.normalSize - this.#count;
    const maxAt = start + this.maxSize - this.#count;
    const gear = this.#gear;
    let hash = this.#hash;
    let i = Math.max(start, Math.min(minAt, end));
    const hard = this.#shiftHard;
    for (const stop = Math.min(end, normalAt); i < stop; i++) {
      hash = ((hash << 1) + gear[buf[i]!]!) | 0;
      if (hash >>> hard === 0) return this.#cut(i + 1);
    }
    const easy = this.#shiftEasy;
    for (const stop = Math.min(end, maxAt); i < stop; i++) {
      hash = ((hash << 1) + gear[buf[i]!]!) | 0;
      if (hash >>> easy === 0) return this.#cut(i + 1);
    }
    if (i === maxAt) return this.#cut(maxAt);
    this.#count += end - start;
    this.#hash = hash;
    return -1;
  }

  #cut(at: number): number {
    this.reset();
    return at;
  }
}

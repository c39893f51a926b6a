import { BackupError } from '../errors.js';
import { MAX_CHUNK, MIN_CHUNK, type ContentChunker } from './chunker.js';
import { degree, isIrreducible, mod, parsePolynomial } from './polynomial.js';

/**
 * restic's chunker (github.com/restic/chunker): a Rabin fingerprint over a 64-byte window, modulo
 * the repository's random irreducible polynomial (config's `chunker_polynomial`), cut where the
 * low 20 bits are zero. Same polynomial, same cuts: files we store and files restic stores into
 * one repository share their blobs.
 *
 * The fingerprint stays below 2^53 but needs 64-bit shifts and xors, which JavaScript has only on
 * 32-bit integers: it is kept as two halves, `hi` (bits 32-63) and `lo` (bits 0-31).
 */

const WINDOW = 64;
const SPLIT_MASK = (1 << 20) - 1;

interface Tables {
  outHi: Int32Array;
  outLo: Int32Array;
  modHi: Int32Array;
  modLo: Int32Array;
  /** The fingerprint's top byte sits at bit `polShift` (degree - 8); in `hi` that is `polShift - 32`. */
  hiShift: number;
}

const tableCache = new Map<bigint, Tables>();

/** A polynomial as restic's config stores it (`"3dea92648f6e83"`), checked to be one restic's chunker can use. */
export function chunkerPolynomial(value: string | bigint): bigint {
  const pol = typeof value === 'bigint' ? (isIrreducible(value) ? value : undefined) : parsePolynomial(value);
  if (pol === undefined) throw new BackupError('E_INTEGRITY', `restic config: chunker_polynomial ${JSON.stringify(String(value))} is not hex for an irreducible polynomial`);
  // restic's tables need the fingerprint to fit 53 bits; restic makes polynomials of degree 53.
  if (degree(pol) < 40 || degree(pol) > 53) throw new BackupError('E_INTEGRITY', `restic config: chunker_polynomial ${pol.toString(16)} has degree ${degree(pol)}; restic's are of degree 53`);
  return pol;
}

function tablesFor(pol: bigint): Tables {
  const cached = tableCache.get(pol);
  if (cached) return cached;
  const deg = degree(pol);
  const t: Tables = {
    outHi: new Int32Array(256),
    outLo: new Int32Array(256),
    modHi: new Int32Array(256),
    modLo: new Int32Array(256),
    hiShift: deg - 8 - 32,
  };
  const split = (table: 'out' | 'mod', b: number, v: bigint) => {
    t[`${table}Hi`][b] = Number(v >> 32n);
    t[`${table}Lo`][b] = Number(v & 0xffffffffn);
  };
  for (let b = 0; b < 256; b++) {
    // The fingerprint of b followed by 63 zero bytes: xoring it out removes b from the window.
    let h = mod(BigInt(b), pol);
    for (let i = 0; i < WINDOW - 1; i++) h = mod(h << 8n, pol);
    split('out', b, h);
    // Reduction of the 8 bits that a shift pushes above the degree, and their cancellation.
    const high = BigInt(b) << BigInt(deg);
    split('mod', b, mod(high, pol) | high);
  }
  tableCache.set(pol, t);
  return t;
}

export class RabinChunker implements ContentChunker {
  readonly minSize: number;
  readonly maxSize: number;
  readonly #t: Tables;
  readonly #window = new Uint8Array(WINDOW);
  #wpos = 0;
  #hi = 0;
  #lo = 0;
  /** Bytes of the current chunk seen so far, skipped ones included. */
  #count = 0;
  /** Bytes still to skip before hashing: no cut can fall before minSize. */
  #pre = 0;

  constructor(polynomial: string | bigint, sizes: { min?: number; max?: number } = {}) {
    this.#t = tablesFor(chunkerPolynomial(polynomial));
    this.minSize = sizes.min ?? MIN_CHUNK;
    this.maxSize = sizes.max ?? MAX_CHUNK;
    this.reset();
  }

  reset(): void {
    // restic starts each chunk with a window of one 1 byte and 63 zeros, fingerprint 1.
    this.#window.fill(0);
    this.#window[0] = 1;
    this.#wpos = 1;
    this.#hi = 0;
    this.#lo = 1;
    this.#count = 0;
    this.#pre = this.minSize - WINDOW;
  }

  findCut(buf: Uint8Array, start: number, end: number): number {
    let i = start;
    if (this.#pre > 0) {
      const n = end - start;
      if (this.#pre >= n) {
        this.#pre -= n;
        this.#count += n;
        return -1;
      }
      i += this.#pre;
      this.#count += this.#pre;
      this.#pre = 0;
    }
    const { outHi, outLo, modHi, modLo, hiShift } = this.#t;
    const win = this.#window;
    const min = this.minSize;
    const max = this.maxSize;
    let wpos = this.#wpos;
    let hi = this.#hi;
    let lo = this.#lo;
    let count = this.#count;
    for (; i < end; i++) {
      const b = buf[i]!;
      const out = win[wpos]!;
      win[wpos] = b;
      wpos = (wpos + 1) & (WINDOW - 1);
      hi ^= outHi[out]!;
      lo ^= outLo[out]!;
      const index = hi >>> hiShift;
      hi = (hi << 8) | (lo >>> 24);
      lo = (lo << 8) | b;
      hi ^= modHi[index]!;
      lo ^= modLo[index]!;
      count++;
      if (((lo & SPLIT_MASK) === 0 || count >= max) && count >= min) {
        this.reset();
        return i + 1;
      }
    }
    this.#wpos = wpos;
    this.#hi = hi;
    this.#lo = lo;
    this.#count = count;
    return -1;
  }
}

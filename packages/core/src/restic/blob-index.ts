import type { BlobType } from './store.js';

/**
 * The in-memory index: where each blob is (pack number, offset, sealed length, plaintext
 * length). A million blobs must fit in a few tens of MB, so entries live in typed arrays (49
 * bytes each) and an open-addressing table of entry numbers keyed by the id's first bytes
 * (sha256 ids are uniformly random, so they are their own hash). No object per blob.
 */

const ID = 32;
const EMPTY = 0;

export interface BlobLocation {
  /** The pack's number in the repository's pack list. */
  pack: number;
  offset: number;
  length: number;
  /** 0 when the blob is stored uncompressed. */
  uncompressedLength: number;
}

export class BlobIndex {
  #count = 0;
  #capacity: number;
  #ids: Uint8Array;
  #types: Uint8Array;
  #packs: Uint32Array;
  #offsets: Uint32Array;
  #lengths: Uint32Array;
  #uncompressed: Uint32Array;
  /** Entry number + 1 per slot, 0 when free; at most half full. */
  #slots: Uint32Array;
  #mask: number;
  /** Scratch for converting hex ids without allocating. */
  readonly #key = Buffer.alloc(ID);

  constructor(expected = 1024) {
    this.#capacity = Math.max(16, expected);
    this.#ids = new Uint8Array(this.#capacity * ID);
    this.#types = new Uint8Array(this.#capacity);
    this.#packs = new Uint32Array(this.#capacity);
    this.#offsets = new Uint32Array(this.#capacity);
    this.#lengths = new Uint32Array(this.#capacity);
    this.#uncompressed = new Uint32Array(this.#capacity);
    const slots = nextPowerOfTwo(this.#capacity * 2);
    this.#slots = new Uint32Array(slots);
    this.#mask = slots - 1;
  }

  get size(): number {
    return this.#count;
  }

  /** Bytes the arrays hold (for the memory budget). */
  get byteLength(): number {
    return this.#capacity * (ID + 1 + 16) + this.#slots.byteLength;
  }

  /** Adds a blob unless one with this type and id is held; returns whether it was added. */
  add(type: BlobType, id: Uint8Array | string, where: BlobLocation): boolean {
    const key = this.#keyOf(id);
    const t = typeCode(type);
    let found = this.#probe(t, key);
    if (found >= 0) return false;
    if (this.#count === this.#capacity) {
      this.#grow();
      found = this.#probe(t, key);
    }
    const slot = -found - 1;
    const e = this.#count++;
    this.#ids.set(key, e * ID);
    this.#types[e] = t;
    this.#packs[e] = where.pack;
    this.#offsets[e] = where.offset;
    this.#lengths[e] = where.length;
    this.#uncompressed[e] = where.uncompressedLength;
    this.#slots[slot] = e + 1;
    return true;
  }

  /** The entry number of a blob, or -1. */
  lookup(type: BlobType, id: Uint8Array | string): number {
    const found = this.#probe(typeCode(type), this.#keyOf(id));
    return found >= 0 ? (this.#slots[found] as number) - 1 : -1;
  }

  has(type: BlobType, id: Uint8Array | string): boolean {
    return this.lookup(type, id) >= 0;
  }

  location(entry: number): BlobLocation {
    return {
      pack: this.#packs[entry] as number,
      offset: this.#offsets[entry] as number,
      length: this.#lengths[entry] as number,
      uncompressedLength: this.#uncompressed[entry] as number,
    };
  }

  /** Plaintext length: stored blobs are their sealed length less the IV and MAC. */
  plaintextLength(entry: number): number {
    return (this.#uncompressed[entry] as number) || (this.#lengths[entry] as number) - 32;
  }

  /** Calls `fn` for every entry, with the id as a view valid only during the call. */
  forEach(fn: (type: BlobType, id: Uint8Array, where: BlobLocation) => void): void {
    for (let e = 0; e < this.#count; e++) {
      fn(this.#types[e] ? 'tree' : 'data', this.#ids.subarray(e * ID, e * ID + ID), this.location(e));
    }
  }

  /** The slot holding (type, key), or -(slot + 1) for the free slot where it would go. */
  #probe(t: number, key: Uint8Array): number {
    const ids = this.#ids;
    let slot = (((key[0] as number) | ((key[1] as number) << 8) | ((key[2] as number) << 16) | ((key[3] as number) << 24)) ^ t) & this.#mask;
    for (;;) {
      const v = this.#slots[slot] as number;
      if (v === EMPTY) return -slot - 1;
      const at = (v - 1) * ID;
      if (this.#types[v - 1] === t && ids[at] === key[0] && sameId(ids, at, key)) return slot;
      slot = (slot + 1) & this.#mask;
    }
  }

  #keyOf(id: Uint8Array | string): Uint8Array {
    if (typeof id !== 'string') return id;
    if (this.#key.write(id, 'hex') !== ID || id.length !== ID * 2) throw new TypeError(`not a blob id: ${JSON.stringify(id)}`);
    return this.#key;
  }

  #grow(): void {
    const capacity = Math.ceil(this.#capacity * 1.5);
    const grow8 = (a: Uint8Array, n: number) => {
      const b = new Uint8Array(n);
      b.set(a);
      return b;
    };
    const grow32 = (a: Uint32Array) => {
      const b = new Uint32Array(capacity);
      b.set(a);
      return b;
    };
    this.#ids = grow8(this.#ids, capacity * ID);
    this.#types = grow8(this.#types, capacity);
    this.#packs = grow32(this.#packs);
    this.#offsets = grow32(this.#offsets);
    this.#lengths = grow32(this.#lengths);
    this.#uncompressed = grow32(this.#uncompressed);
    this.#capacity = capacity;
    if (capacity * 2 > this.#slots.length) this.#rehash(nextPowerOfTwo(capacity * 2));
  }

  #rehash(size: number): void {
    this.#slots = new Uint32Array(size);
    this.#mask = size - 1;
    for (let e = 0; e < this.#count; e++) {
      const found = this.#probe(this.#types[e] as number, this.#ids.subarray(e * ID, e * ID + ID));
      this.#slots[-found - 1] = e + 1;
    }
  }
}

function sameId(ids: Uint8Array, at: number, key: Uint8Array): boolean {
  for (let i = 0; i < ID; i++) if (ids[at + i] !== key[i]) return false;
  return true;
}

function typeCode(type: BlobType): number {
  return type === 'tree' ? 1 : 0;
}

function nextPowerOfTwo(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

/** Pack numbers and ids: a pack being written has its number before it has an id. */
export class PackList {
  readonly #ids: string[] = [];
  readonly #numbers = new Map<string, number>();

  get size(): number {
    return this.#ids.length;
  }

  /** A number for a pack whose id is not known yet. */
  reserve(): number {
    return this.#ids.push('') - 1;
  }

  name(pack: number, id: string): void {
    this.#ids[pack] = id;
    this.#numbers.set(id, pack);
  }

  /** The number of a stored pack, added when new. */
  numberOf(id: string): number {
    let n = this.#numbers.get(id);
    if (n === undefined) {
      n = this.reserve();
      this.name(n, id);
    }
    return n;
  }

  /** The id of pack `n`, or undefined while it is being written. */
  id(pack: number): string | undefined {
    return this.#ids[pack] || undefined;
  }
}

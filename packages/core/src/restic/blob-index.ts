import type { BlobType } from './store.js';

/**
 * The in-memory index: where each blob is (pack number, offset, sealed length, plaintext
 * length). A million blobs must fit in a few tens of MB, so entries live in typed arrays, 49
 * bytes each, in pages of 64 Ki entries (growing never copies what is held), found through an
 * open-addressing table of entry numbers keyed by the id's first bytes (sha256 ids are uniformly
 * random, so they are their own hash). No object per blob.
 */

const ID = 32;
const EMPTY = 0;
const PAGE_BITS = 16;
const PAGE = 1 << PAGE_BITS;
const IN_PAGE = PAGE - 1;
const FIRST_PAGE = 1024;

export interface BlobLocation {
  /** The pack's number in the repository's pack list. */
  pack: number;
  offset: number;
  length: number;
  /** 0 when the blob is stored uncompressed. */
  uncompressedLength: number;
}

interface Page {
  ids: Uint8Array;
  types: Uint8Array;
  /** pack, offset, length, uncompressed length per entry. */
  meta: Uint32Array;
}

function newPage(entries: number): Page {
  return { ids: new Uint8Array(entries * ID), types: new Uint8Array(entries), meta: new Uint32Array(entries * 4) };
}

export class BlobIndex {
  #count = 0;
  /** Entries the pages hold room for; only the first page is ever smaller than PAGE. */
  #capacity = FIRST_PAGE;
  readonly #pages: Page[] = [newPage(FIRST_PAGE)];
  /** Entry number + 1 per slot, 0 when free; at most half full. */
  #slots = new Uint32Array(FIRST_PAGE * 2);
  #mask = FIRST_PAGE * 2 - 1;
  /** Scratch for converting hex ids without allocating. */
  readonly #key = Buffer.alloc(ID);

  get size(): number {
    return this.#count;
  }

  /** Forgets every entry (keeps the first page). */
  clear(): void {
    this.#count = 0;
    this.#capacity = FIRST_PAGE;
    this.#pages.length = 0;
    this.#pages.push(newPage(FIRST_PAGE));
    this.#slots = new Uint32Array(FIRST_PAGE * 2);
    this.#mask = FIRST_PAGE * 2 - 1;
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
    if (this.#count === this.#capacity) this.#grow();
    if ((this.#count + 1) * 2 > this.#slots.length) {
      this.#rehash(this.#slots.length * 2);
      found = this.#probe(t, key);
    }
    const e = this.#count++;
    const page = this.#pages[e >>> PAGE_BITS] as Page;
    const i = e & IN_PAGE;
    page.ids.set(key, i * ID);
    page.types[i] = t;
    page.meta[i * 4] = where.pack;
    page.meta[i * 4 + 1] = where.offset;
    page.meta[i * 4 + 2] = where.length;
    page.meta[i * 4 + 3] = where.uncompressedLength;
    this.#slots[-found - 1] = e + 1;
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
    const meta = (this.#pages[entry >>> PAGE_BITS] as Page).meta;
    const at = (entry & IN_PAGE) * 4;
    return { pack: meta[at] as number, offset: meta[at + 1] as number, length: meta[at + 2] as number, uncompressedLength: meta[at + 3] as number };
  }

  /** Moves an entry (a blob sealed on a crypto thread gets its place in a pack once appended). */
  setLocation(entry: number, where: BlobLocation): void {
    const meta = (this.#pages[entry >>> PAGE_BITS] as Page).meta;
    const at = (entry & IN_PAGE) * 4;
    meta[at] = where.pack;
    meta[at + 1] = where.offset;
    meta[at + 2] = where.length;
    meta[at + 3] = where.uncompressedLength;
  }

  /** Plaintext length: stored blobs are their sealed length less the IV and MAC. */
  plaintextLength(entry: number): number {
    const where = this.location(entry);
    return where.uncompressedLength || where.length - 32;
  }

  /** Calls `fn` for every entry, with the id as a view valid only during the call. */
  forEach(fn: (type: BlobType, id: Uint8Array, where: BlobLocation) => void): void {
    for (let e = 0; e < this.#count; e++) {
      const page = this.#pages[e >>> PAGE_BITS] as Page;
      const i = e & IN_PAGE;
      fn(page.types[i] ? 'tree' : 'data', page.ids.subarray(i * ID, i * ID + ID), this.location(e));
    }
  }

  /** The slot holding (type, key), or -(slot + 1) for the free slot where it would go. */
  #probe(t: number, key: Uint8Array): number {
    let slot = (((key[0] as number) | ((key[1] as number) << 8) | ((key[2] as number) << 16) | ((key[3] as number) << 24)) ^ t) & this.#mask;
    for (;;) {
      const v = this.#slots[slot] as number;
      if (v === EMPTY) return -slot - 1;
      const e = v - 1;
      const page = this.#pages[e >>> PAGE_BITS] as Page;
      const i = e & IN_PAGE;
      if (page.types[i] === t && sameId(page.ids, i * ID, key)) return slot;
      slot = (slot + 1) & this.#mask;
    }
  }

  #keyOf(id: Uint8Array | string): Uint8Array {
    if (typeof id !== 'string') return id;
    if (id.length !== ID * 2 || this.#key.write(id, 'hex') !== ID) throw new TypeError(`not a blob id: ${JSON.stringify(id)}`);
    return this.#key;
  }

  /** Doubles the first page up to a full one, then adds whole pages. */
  #grow(): void {
    const first = this.#pages[0] as Page;
    if (this.#capacity < PAGE) {
      const size = Math.min(PAGE, this.#capacity * 2);
      const page = newPage(size);
      page.ids.set(first.ids);
      page.types.set(first.types);
      page.meta.set(first.meta);
      this.#pages[0] = page;
      this.#capacity = size;
    } else {
      this.#pages.push(newPage(PAGE));
      this.#capacity += PAGE;
    }
  }

  #rehash(size: number): void {
    this.#slots = new Uint32Array(size);
    this.#mask = size - 1;
    for (let e = 0; e < this.#count; e++) {
      const page = this.#pages[e >>> PAGE_BITS] as Page;
      const i = e & IN_PAGE;
      const found = this.#probe(page.types[i] as number, page.ids.subarray(i * ID, i * ID + ID));
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


/** Pack numbers and ids: a pack being written has its number before it has an id. */
export class PackList {
  readonly #ids: string[] = [];
  readonly #numbers = new Map<string, number>();

  get size(): number {
    return this.#ids.length;
  }

  clear(): void {
    this.#ids.length = 0;
    this.#numbers.clear();
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

import { createHash, randomBytes } from 'node:crypto';
import type { BlobStore, BlobType, FileType, JsonFileStore } from '../../src/restic/store.js';

/**
 * BlobStore and JsonFileStore in memory, for the content layer's unit tests (the storage layer,
 * with packs, encryption and index, is tested on its own and end to end against restic). It
 * copies what it is given, as the real store does, and checks ids, so a caller that hands it a
 * wrong id or reuses a buffer too early is caught.
 */
export class MemoryStore implements BlobStore, JsonFileStore {
  readonly blobs = new Map<string, Buffer>();
  readonly files = new Map<string, unknown>();
  /** Bytes passed to save that were new, by type. */
  readonly added = { data: 0, tree: 0 };
  saves = 0;
  /** Delay before save resolves, to let a test overlap work with it. */
  saveDelayMs = 0;

  has(type: BlobType, id: string): boolean {
    return this.blobs.has(`${type}/${id}`);
  }

  async save(type: BlobType, id: string, plaintext: Uint8Array): Promise<void> {
    // Read the bytes only after the delay: a caller that reuses its buffer before save resolves is caught.
    if (this.saveDelayMs) await new Promise((r) => setTimeout(r, this.saveDelayMs));
    const actual = createHash('sha256').update(plaintext).digest('hex');
    if (actual !== id) throw new Error(`save(${type}, ${id}): the bytes hash to ${actual}`);
    const copy = Buffer.from(plaintext);
    this.saves++;
    if (this.has(type, id)) return;
    this.blobs.set(`${type}/${id}`, copy);
    this.added[type] += copy.length;
  }

  async load(type: BlobType, id: string): Promise<Buffer> {
    const blob = this.blobs.get(`${type}/${id}`);
    if (!blob) throw new Error(`no ${type} blob ${id}`);
    return Buffer.from(blob);
  }

  plaintextSize(type: BlobType, id: string): number | undefined {
    return this.blobs.get(`${type}/${id}`)?.length;
  }

  async flush(): Promise<void> {}

  async saveJson(type: Exclude<FileType, 'keys'>, value: unknown): Promise<string> {
    const text = JSON.stringify(value);
    const id = createHash('sha256').update(text).update(randomBytes(8)).digest('hex');
    this.files.set(`${type}/${id}`, JSON.parse(text));
    return id;
  }

  async loadJson<T>(type: Exclude<FileType, 'keys'>, id: string): Promise<T> {
    if (!this.files.has(`${type}/${id}`)) throw new Error(`no ${type} file ${id}`);
    return this.files.get(`${type}/${id}`) as T;
  }

  async list(type: FileType): Promise<string[]> {
    return [...this.files.keys()].filter((k) => k.startsWith(`${type}/`)).map((k) => k.slice(type.length + 1));
  }

  async remove(type: Exclude<FileType, 'keys'>, id: string): Promise<void> {
    this.files.delete(`${type}/${id}`);
  }
}

/**
 * The seam between the two halves of the restic repository format (restic's doc/design.rst,
 * repository version 2): the storage layer (config, keys, encrypted files, packs, index, locks)
 * implements these; the content layer (chunker, trees, snapshots, archiver, restorer) uses them.
 */

export type BlobType = 'data' | 'tree';

/** The hex sha256 of a blob's plaintext (before compression and encryption). */
export type BlobId = string;

/** The unpacked files of a repository, each encrypted (and, in version 2, compressed) JSON. */
export type FileType = 'snapshots' | 'index' | 'locks' | 'keys';

export interface BlobStore {
  /** Whether the repository holds the blob: in its index, or in a pack being written. */
  has(type: BlobType, id: BlobId): boolean;
  /**
   * Adds a blob, which the store compresses, encrypts and packs; a no-op when it is held. Resolves
   * once the store has taken the bytes (the caller may reuse `plaintext`); the blob is durable
   * only after `flush`.
   */
  save(type: BlobType, id: BlobId, plaintext: Uint8Array): Promise<void>;
  /** A held blob's plaintext, decrypted, decompressed and checked against its id. */
  load(type: BlobType, id: BlobId): Promise<Buffer>;
  /** A held blob's plaintext length, or undefined. */
  plaintextSize(type: BlobType, id: BlobId): number | undefined;
  /** Writes the pending packs and an index file naming them. */
  flush(): Promise<void>;
}

export interface JsonFileStore {
  /** Encrypts (and compresses) `value` as JSON, stores it under `<type>/<id>`, returns the id. */
  saveJson(type: Exclude<FileType, 'keys'>, value: unknown): Promise<string>;
  loadJson<T>(type: Exclude<FileType, 'keys'>, id: string): Promise<T>;
  list(type: FileType): Promise<string[]>;
  remove(type: Exclude<FileType, 'keys'>, id: string): Promise<void>;
}

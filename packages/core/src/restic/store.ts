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
  /**
   * Loads distinct blobs as a restore does: each pack read once, in ranges covering nearby
   * blobs, in pack order. `onBlob` gets each blob's plaintext, valid until its promise resolves.
   * Optional: `loadBlobs` falls back to `load`.
   */
  loadMany?(type: BlobType, ids: Iterable<BlobId>, onBlob: (id: BlobId, plaintext: Buffer) => Promise<void> | void): Promise<void>;
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

/** `store.loadMany`, or one `load` after another for stores without it. */
export async function loadBlobs(
  store: BlobStore,
  type: BlobType,
  ids: Iterable<BlobId>,
  onBlob: (id: BlobId, plaintext: Buffer) => Promise<void> | void,
): Promise<void> {
  if (store.loadMany) return store.loadMany(type, ids, onBlob);
  for (const id of new Set(ids)) await onBlob(id, await store.load(type, id));
}

import type { BlobIndex, PackList } from './blob-index.js';
import type { IndexJson } from './index-file.js';

/**
 * Loading the index files into the in-memory index when a repository opens. The files' bytes
 * need no key, so their listing and the first fetches start beside the key derivation (scrypt);
 * a few are fetched ahead while one is decrypted and added. `supersedes` is honoured: an index
 * file that another one names as replaced is left out (prune writes the replacement, naming the
 * old files in its last file, before it deletes them; an interrupted prune leaves both).
 */

/** Index files fetched ahead of the one being added. */
export const INDEX_READS = 4;

export interface IndexFileSource {
  /** The file's bytes, still sealed. */
  fetch(id: string): Promise<Buffer>;
  /** Decrypts and checks fetched bytes. */
  parse(id: string, bytes: Buffer): IndexJson;
}

/** The listing of index/ and the first fetches, started before the key is known. */
export interface IndexPrefetch {
  ids: string[];
  fetched: Map<string, Promise<Buffer>>;
}

export async function prefetchIndex(list: () => Promise<string[]>, source: Pick<IndexFileSource, 'fetch'>): Promise<IndexPrefetch> {
  const ids = await list();
  const fetched = new Map<string, Promise<Buffer>>();
  for (const id of ids.slice(0, INDEX_READS * 2)) {
    const p = source.fetch(id);
    // Awaited when the key opens; a wrong password leaves it unread.
    p.catch(() => {});
    fetched.set(id, p);
  }
  return { ids, fetched };
}

export interface LoadedIndex {
  /** Every index file listed (a prune replaces them all). */
  ids: string[];
  /** Index files left out because another supersedes them. */
  superseded: string[];
}

export async function loadIndex(index: BlobIndex, packs: PackList, source: IndexFileSource, prefetch: IndexPrefetch): Promise<LoadedIndex> {
  const { ids } = prefetch;
  const superseded = await addFiles(index, packs, source, ids, prefetch.fetched);
  const left = ids.filter((id) => superseded.has(id));
  if (!left.length) return { ids, superseded: [] };
  // Rare (after an interrupted prune): start again without the replaced files, whose packs may be gone.
  index.clear();
  packs.clear();
  const kept = ids.filter((id) => !superseded.has(id));
  await addFiles(index, packs, source, kept, new Map());
  return { ids, superseded: left };
}

async function addFiles(index: BlobIndex, packs: PackList, source: IndexFileSource, ids: string[], fetched: Map<string, Promise<Buffer>>): Promise<Set<string>> {
  const superseded = new Set<string>();
  const fetch = (id: string) => {
    const p = fetched.get(id) ?? source.fetch(id);
    fetched.delete(id);
    p.catch(() => {});
    return p;
  };
  const ahead = ids.slice(0, INDEX_READS).map(fetch);
  for (let i = 0; i < ids.length; i++) {
    const bytes = await (ahead.shift() as Promise<Buffer>);
    if (i + INDEX_READS < ids.length) ahead.push(fetch(ids[i + INDEX_READS] as string));
    const file = source.parse(ids[i] as string, bytes);
    for (const s of file.supersedes ?? []) superseded.add(s);
    addToIndex(index, packs, file);
  }
  return superseded;
}

export function addToIndex(index: BlobIndex, packs: PackList, file: IndexJson): void {
  for (const pack of file.packs) {
    const n = packs.numberOf(pack.id);
    for (const b of pack.blobs) {
      index.add(b.type, b.id, { pack: n, offset: b.offset, length: b.length, uncompressedLength: b.uncompressed_length ?? 0 });
    }
  }
}

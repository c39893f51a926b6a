import { BackupError } from '../errors.js';
import type { BlobIndex } from './blob-index.js';
import type { BlobStore } from './store.js';
import { decodeTree } from './tree.js';

/**
 * The blobs the given snapshot trees reference, as marks on the in-memory index's entries (one
 * byte per entry, no set of ids: a million blobs cost a megabyte). Trees are read a level at a
 * time, each level through `loadBlobs` (a pack read once for all of a level's trees in it); a
 * tree shared by many snapshots is read once. A referenced blob the index lacks stops the walk:
 * a prune must never run on an index that is missing data.
 */
export async function markUsedBlobs(store: Required<Pick<BlobStore, 'loadMany'>>, index: BlobIndex, roots: readonly string[]): Promise<Uint8Array> {
  const used = new Uint8Array(index.size);
  let level: string[] = [];
  const reach = (type: 'tree' | 'data', id: string, from: string) => {
    const e = index.lookup(type, id);
    if (e < 0) {
      throw new BackupError('E_INTEGRITY', `${from} references ${type} blob ${id}, which no index names; prune refuses to run (run check)`, {
        details: { object: `${type} blob ${id}` },
      });
    }
    if (used[e]) return;
    used[e] = 1;
    if (type === 'tree') level.push(id);
  };
  for (const root of roots) reach('tree', root, 'a snapshot');
  while (level.length) {
    const trees = level;
    level = [];
    await store.loadMany('tree', trees, (id, plaintext) => {
      for (const node of decodeTree(plaintext, id)) {
        for (const blob of node.content ?? []) reach('data', blob, `tree ${id}`);
        if (node.type === 'dir' && node.subtree) reach('tree', node.subtree, `tree ${id}`);
      }
    });
  }
  return used;
}

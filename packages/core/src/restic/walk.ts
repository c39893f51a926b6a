import { Readable } from 'node:stream';
import { BackupError } from '../errors.js';
import type { ResticNode } from './node.js';
import { loadBlobs, type BlobStore } from './store.js';
import { decodeTree, nameBytes } from './tree.js';

/** Loads and parses a tree blob, naming it in errors. */
export async function loadTree(store: BlobStore, id: string): Promise<ResticNode[]> {
  if (!store.has('tree', id)) throw new BackupError('E_INTEGRITY', `restic tree ${id} is not in the repository`);
  return decodeTree(await store.load('tree', id), id);
}

export interface WalkEntry {
  /** The path in the snapshot, from `/` (names that are not UTF-8 in their Go-escaped form). */
  path: string;
  node: ResticNode;
}

/** Every entry below a tree, depth first, in name order (`restic ls`). */
export async function* walkTree(store: BlobStore, treeId: string, prefix = ''): AsyncGenerator<WalkEntry> {
  for (const node of await loadTree(store, treeId)) {
    const entryPath = `${prefix}/${node.name}`;
    yield { path: entryPath, node };
    if (node.type === 'dir' && node.subtree) yield* walkTree(store, node.subtree, entryPath);
  }
}

/** The names of a snapshot path: `/db/var/lib` → ['db', 'var', 'lib']; refuses `..`. */
export function snapshotPathNames(snapshotPath: string): string[] {
  const names = snapshotPath.split('/').filter((n) => n !== '' && n !== '.');
  if (names.includes('..')) throw new BackupError('E_USAGE', `${snapshotPath}: a path in a snapshot cannot contain ".."`);
  return names;
}

/**
 * The node at a path of a snapshot tree with the nodes of the folders on the way, or throws
 * E_NOT_FOUND naming the first missing name. The root itself has no node: `[]` for `/`.
 */
export async function findPath(store: BlobStore, rootTree: string, snapshotPath: string): Promise<ResticNode[]> {
  const chain: ResticNode[] = [];
  let tree: string | undefined = rootTree;
  for (const name of snapshotPathNames(snapshotPath)) {
    if (!tree) throw new BackupError('E_NOT_FOUND', `${snapshotPath}: ${chain.at(-1)!.name} is not a folder`);
    const key = Buffer.from(name, 'utf8');
    const node: ResticNode | undefined = (await loadTree(store, tree)).find((n) => n.name === name || nameBytes(n).equals(key));
    if (!node) throw new BackupError('E_NOT_FOUND', `${snapshotPath}: no ${JSON.stringify(name)} in the snapshot`);
    chain.push(node);
    tree = node.type === 'dir' ? node.subtree : undefined;
  }
  return chain;
}

/** Plaintext bytes a file stream loads at once (one window), and one more window read ahead. */
const STREAM_WINDOW = 16 * 1024 * 1024;

/**
 * A file node's bytes as a stream (`restore --into` of a database dump). Blobs are loaded in
 * windows of up to `windowBytes` of plaintext, each through `loadBlobs` (a pack read once for
 * all of the window's blobs in it), the next window while the current one is consumed. Errors (a
 * missing or damaged blob, a size that does not match the node) end the stream with an error
 * (E_INTEGRITY unless the store named another), so a consumer never takes a short file for a
 * whole one.
 */
export function fileStream(store: BlobStore, node: ResticNode, options: { windowBytes?: number; label?: string } = {}): Readable {
  const ids = node.content ?? [];
  const limit = Math.max(1, options.windowBytes ?? STREAM_WINDOW);
  const label = options.label ?? node.name;
  let next = 0;
  let bytes = 0;
  const loadWindow = async (): Promise<Buffer[] | undefined> => {
    if (next >= ids.length) return undefined;
    const from = next;
    let size = 0;
    do size += store.plaintextSize('data', ids[next++]!) ?? 1024 * 1024;
    while (next < ids.length && size + (store.plaintextSize('data', ids[next]!) ?? 0) <= limit);
    const window = ids.slice(from, next);
    const got = new Map<string, Buffer>();
    // The plaintext is the store's until the callback returns: keep a copy for the consumer.
    await loadBlobs(store, 'data', window, (id, plaintext) => void got.set(id, Buffer.from(plaintext)));
    return window.map((id) => got.get(id)!);
  };
  const start = () => {
    const p = loadWindow();
    p.catch(() => {});
    return p;
  };
  let ahead = start();
  let current: Buffer[] = [];
  return new Readable({
    highWaterMark: 0,
    // One push per call: Node calls read again only after a push.
    async read() {
      try {
        if (!current.length) {
          const window = await ahead;
          if (!window) {
            if (bytes !== (node.size ?? 0)) throw new Error(`holds ${bytes} bytes, but its node says ${node.size ?? 0}`);
            this.push(null);
            return;
          }
          ahead = start();
          current = window;
        }
        const blob = current.shift()!;
        bytes += blob.length;
        this.push(blob);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.destroy(err instanceof BackupError ? err : new BackupError('E_INTEGRITY', `${label}: ${message}`, { cause: err }));
      }
    },
  });
}

import type { ResticNode } from './node.js';
import type { BlobStore } from './store.js';
import { decodeTree, nameBytes } from './tree.js';

/** A map key for a name's bytes (latin1 maps each byte to one character, so no two names collide). */
export function nameKey(name: Buffer): string {
  return name.toString('latin1');
}

/**
 * The parent snapshot's tree, read lazily along the folders the archiver walks: each folder's
 * tree is loaded once, when the archiver reaches the same folder.
 */
export class ParentTrees {
  readonly #store: BlobStore;
  readonly #root: string | undefined;

  constructor(store: BlobStore, rootTree: string | undefined) {
    this.#store = store;
    this.#root = rootTree;
  }

  /** The entries of a folder node of the parent, by name key (empty when it has none). */
  async children(folder: ResticNode | undefined): Promise<Map<string, ResticNode>> {
    if (!folder?.subtree || folder.type !== 'dir') return new Map();
    return this.#load(folder.subtree);
  }

  async #load(treeId: string): Promise<Map<string, ResticNode>> {
    // A parent missing from the repository (pruned, damaged) only means reading everything.
    if (!this.#store.has('tree', treeId)) return new Map();
    const nodes = decodeTree(await this.#store.load('tree', treeId), treeId);
    return new Map(nodes.map((n) => [nameKey(nameBytes(n)), n]));
  }

  /** The parent's node at a path of names from the root (`['db', 'var', 'lib']`), if any. */
  async at(names: string[]): Promise<ResticNode | undefined> {
    if (!this.#root) return undefined;
    let entries = await this.#load(this.#root);
    let node: ResticNode | undefined;
    for (const [i, name] of names.entries()) {
      node = entries.get(nameKey(Buffer.from(name, 'utf8')));
      if (!node) return undefined;
      if (i < names.length - 1) entries = await this.children(node);
    }
    return node;
  }
}

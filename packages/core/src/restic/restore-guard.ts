import { BackupError } from '../errors.js';
import { MAX_TREE_DEPTH, rewriteAbsoluteSymlink, symlinkTargetReason } from '../pipeline/tar-extract.js';
import type { ResticNode } from './node.js';
import { nameBytes } from './tree.js';

/**
 * The restore's checks on a restic tree (which anyone holding the password can write): the same
 * rules as core's tar restore (docs/security.md, "Safe restore"), applied to nodes.
 */

/** Node types written by a restore; devices, FIFOs and sockets are left out (with a warning). */
const written = new Set(['file', 'dir', 'symlink']);
const leftOut = new Set(['dev', 'chardev', 'fifo', 'socket', 'irregular']);

/** Why a name cannot be a directory entry, or undefined. */
export function unsafeNameReason(name: Buffer): string | undefined {
  if (name.length === 0) return 'an empty name';
  if (name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) return `the name ${JSON.stringify(name.toString())}`;
  if (name.includes(0x2f)) return 'a name with "/"';
  if (name.includes(0)) return 'a name with a NUL byte';
  return undefined;
}

export interface GuardLimits {
  maxDepth?: number | undefined;
  /** Entries a restore may create: a tree that names the same subtree over and over multiplies. */
  maxEntries?: number | undefined;
}

export const MAX_RESTORE_ENTRIES = 20_000_000;

/** Whether a node is written, left out (special files), or refused (with the reason). */
export type Verdict = { write: true } | { write: false; reason?: string };

/**
 * Checks each tree's nodes before anything is written: names, duplicates, types, depth, the
 * number of entries, and symlink targets (relative ones that lead out of the restored tree).
 */
export class RestoreGuard {
  readonly #maxDepth: number;
  readonly #maxEntries: number;
  readonly #label: string;
  entries = 0;
  leftOut = 0;
  withAttributes = 0;

  constructor(label: string, limits: GuardLimits = {}) {
    this.#label = label;
    this.#maxDepth = limits.maxDepth ?? MAX_TREE_DEPTH;
    this.#maxEntries = limits.maxEntries ?? MAX_RESTORE_ENTRIES;
  }

  refuse(where: string, reason: string): never {
    throw new BackupError('E_RESTORE', `${this.#label}: refused snapshot entry ${JSON.stringify(where)}: ${reason}; nothing was restored`);
  }

  /** Checks one tree's nodes; `parts` is the tree's folder path from the restore target. */
  checkTree(parts: string[], nodes: ResticNode[]): void {
    const names = new Set<string>();
    if (parts.length + 1 > this.#maxDepth) this.refuse(parts.join('/'), `nested ${parts.length + 1} folders deep (the limit is ${this.#maxDepth})`);
    for (const node of nodes) {
      const bytes = nameBytes(node);
      const where = [...parts, node.name].join('/');
      const nameReason = unsafeNameReason(bytes);
      if (nameReason) this.refuse(where, nameReason);
      const key = bytes.toString('latin1');
      if (names.has(key)) this.refuse(where, 'appears twice in its folder');
      names.add(key);
      if (++this.entries > this.#maxEntries) this.refuse(where, `the snapshot holds more than ${this.#maxEntries} entries`);
      if (!written.has(node.type) && !leftOut.has(node.type)) this.refuse(where, `unknown entry type ${JSON.stringify(node.type)}`);
      if (node.type === 'dir' && !node.subtree) this.refuse(where, 'a folder without a tree');
      if (node.extendedAttributes?.length) this.withAttributes++;
    }
  }

  /** Whether to write the node; counts left-out special files. */
  verdict(node: ResticNode): Verdict {
    if (written.has(node.type)) return { write: true };
    this.leftOut++;
    return { write: false };
  }
}

/**
 * Where a symlink's target is judged from: absolute targets resolve inside the first
 * `rootDepth` folders of the restore (1: `/<source>/`, which holds a source's absolute paths;
 * 0: the target itself, for snapshots restic made), never outside it.
 */
export function linkRoot(parts: string[], rootDepth: number): { root: string[]; inside: string } {
  const depth = Math.min(rootDepth, parts.length - 1);
  return { root: parts.slice(0, depth), inside: parts.slice(depth).join('/') };
}

/**
 * The target to write for a symlink at `parts` (its path from the restore target): absolute
 * targets rewritten to point inside the link root, relative ones refused when they lead out.
 * `rawPath`: the link's name or a folder above it is not UTF-8.
 */
export function safeLinkTarget(
  guard: RestoreGuard,
  parts: string[],
  node: ResticNode,
  rootDepth: number,
  rawPath: boolean,
): { target: string; rewritten: boolean } {
  const target = node.linkTargetRaw ? node.linkTargetRaw.toString('utf8') : (node.linkTarget ?? '');
  const { inside } = linkRoot(parts, rootDepth);
  const reason = symlinkTargetReason(inside, target);
  if (reason) guard.refuse(parts.join('/'), reason);
  // Links are followed after the restore to catch chains that lead out, by UTF-8 paths only; a
  // link whose path is not UTF-8 must not climb at all.
  if (rawPath && !target.startsWith('/') && target.split('/').includes('..')) {
    guard.refuse(parts.join('/'), 'a symlink with ".." where a name on its path is not UTF-8');
  }
  if (target.startsWith('/')) return { target: rewriteAbsoluteSymlink(inside, target), rewritten: true };
  return { target, rewritten: false };
}

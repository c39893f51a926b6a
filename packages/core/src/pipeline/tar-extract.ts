import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { ReadEntry } from 'tar';
import { BackupError } from '../errors.js';

export interface TreeStats {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
}

/** Deeper than any real tree; far below what breaks path handling (2000 nested folders). */
export const MAX_TREE_DEPTH = 256;

/** The entry fields the safety checks look at. */
export type EntryHeader = Pick<ReadEntry, 'path' | 'type' | 'linkpath'> & { size?: number | undefined };

const allowedTypes = new Set(['File', 'OldFile', 'Directory', 'SymbolicLink']);

const typeNames: Record<string, string> = {
  Link: 'a hardlink',
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a FIFO',
};

/** An archive path as components, without empty and `.` parts: `./a//b/` → `['a', 'b']`. */
export function pathParts(p: string): string[] {
  return p.split('/').filter((part) => part !== '' && part !== '.');
}

/**
 * Why an entry must not be extracted, looking at the entry alone (type, path, depth, link
 * target), or undefined when it is safe. Absolute symlink targets are not refused here: see
 * `rewriteAbsoluteSymlink`.
 */
export function unsafeEntryReason(entry: EntryHeader, maxDepth = MAX_TREE_DEPTH): string | undefined {
  const p = entry.path;
  if (!allowedTypes.has(entry.type)) return `${typeNames[entry.type] ?? `entry type ${entry.type}`} is not allowed in a restore`;
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return 'absolute path';
  const parts = p.split('/');
  if (parts.includes('..')) return 'path contains ".."';
  const depth = pathParts(p).length;
  if (depth > maxDepth) return `nested ${depth} folders deep (the limit is ${maxDepth})`;
  if (entry.type === 'SymbolicLink') return symlinkTargetReason(p, entry.linkpath ?? '');
  return undefined;
}

/**
 * Why a symlink target is refused: empty, or a relative target that leads out of the tree
 * (`../../etc`), judged from the link's own folder. Absolute targets pass (they are rewritten).
 */
export function symlinkTargetReason(entryPath: string, target: string): string | undefined {
  if (!target) return 'symlink without a target';
  if (target.includes('\0')) return 'symlink target contains a NUL byte';
  if (target.startsWith('/')) return undefined;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(pathParts(entryPath).join('/') || '.'), target));
  if (resolved === '..' || resolved.startsWith('../')) return `symlink points outside the restored tree (${target})`;
  return undefined;
}

/**
 * An absolute symlink target made relative to the restored tree: a tree keeps its absolute
 * paths under `DIR/<source>/`, so `/etc/alternatives/x` becomes the relative path from the link
 * to `DIR/<source>/etc/alternatives/x`. The link keeps its meaning when the tree is copied back
 * to `/`, and never points outside the restore.
 */
export function rewriteAbsoluteSymlink(entryPath: string, target: string): string {
  const from = path.posix.join('/', path.posix.dirname(pathParts(entryPath).join('/') || '.'));
  const to = path.posix.resolve('/', target);
  return path.posix.relative(from, to) || '.';
}

/** The mode a restored entry gets: setuid/setgid bits only with `preserveOwner` (else anyone restoring as root plants a setuid-root file). */
export function restoredMode(mode: number | undefined, preserveOwner: boolean): number | undefined {
  if (mode === undefined) return undefined;
  return preserveOwner ? mode & 0o7777 : mode & 0o1777;
}

/**
 * The checks that need the entries seen before: nothing may be written through, or replace, a
 * symlink the archive made earlier (`link -> /etc`, then `link/passwd`); no path may appear twice;
 * the files may not hold more bytes than the manifest records.
 */
export class ExtractionGuard {
  readonly #symlinks = new Set<string>();
  readonly #seen = new Map<string, string>();
  readonly #maxBytes: number;
  readonly #maxDepth: number;
  #bytes = 0;

  constructor(limits: { maxBytes?: number | undefined; maxDepth?: number | undefined } = {}) {
    this.#maxBytes = limits.maxBytes ?? Infinity;
    this.#maxDepth = limits.maxDepth ?? MAX_TREE_DEPTH;
  }

  /** The symlinks accepted so far (archive paths). */
  get symlinks(): ReadonlySet<string> {
    return this.#symlinks;
  }

  /** Why this entry must not be extracted, or undefined: then it is recorded as extracted. */
  check(entry: EntryHeader): string | undefined {
    const alone = unsafeEntryReason(entry, this.#maxDepth);
    if (alone) return alone;
    const parts = pathParts(entry.path);
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (this.#symlinks.has(parent)) return `would be written through the symlink ${JSON.stringify(parent)}`;
    }
    const key = parts.join('/') || '.';
    const before = this.#seen.get(key);
    if (before === 'SymbolicLink') return `would replace the symlink ${JSON.stringify(key)}`;
    if (before && !(before === 'Directory' && entry.type === 'Directory')) return 'appears twice in the archive';
    if (entry.type === 'File' || entry.type === 'OldFile') {
      this.#bytes += entry.size ?? 0;
      if (this.#bytes > this.#maxBytes) {
        return `the files hold more than the ${this.#maxBytes} bytes the manifest records (a decompression bomb, or an altered archive)`;
      }
    }
    this.#seen.set(key, entry.type);
    if (entry.type === 'SymbolicLink') this.#symlinks.add(key);
    return undefined;
  }
}

const MAX_SYMLINK_HOPS = 40;

/**
 * Follows the symlink at `root/link` as the kernel would, through any other symlinks in the
 * tree, and says whether it stays inside `root`. A chain of links that each look harmless
 * (`a -> .`, `b -> a/..`) can still lead out; this catches it. Dangling links and loops cannot
 * reach anything, so they pass.
 */
export async function symlinkStaysInside(root: string, link: string): Promise<boolean> {
  const folder = pathParts(link).slice(0, -1);
  let pending = (await fsp.readlink(path.join(root, link))).split('/');
  if (pending[0] === '') return false;
  let hops = 0;
  let dangling = false;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (folder.length === 0) return false;
      folder.pop();
      continue;
    }
    if (dangling) {
      folder.push(part);
      continue;
    }
    const candidate = path.join(root, ...folder, part);
    const st = await fsp.lstat(candidate).catch(() => undefined);
    if (!st) {
      dangling = true;
      folder.push(part);
    } else if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) return true;
      const target = await fsp.readlink(candidate);
      if (target.startsWith('/')) return false;
      pending = [...target.split('/'), ...pending];
    } else {
      folder.push(part);
    }
  }
  return true;
}

/** Throws E_RESTORE naming the first symlink under `root` that leads outside it (see `symlinkStaysInside`). */
export async function symlinksStayInside(root: string, links: Iterable<string>, label: string): Promise<void> {
  for (const link of links) {
    if (!(await symlinkStaysInside(root, link))) {
      throw new BackupError('E_RESTORE', `${label}: refused archive entry ${JSON.stringify(link)}: symlink leads outside the restored tree through other symlinks; nothing was restored`);
    }
  }
}

import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadEntry } from 'tar';
import { BackupError } from '../errors.js';
import { undecodableError } from './stored-bytes.js';

export interface ExtractOptions {
  /** Keep the archive's uid/gid and setuid/setgid bits (only meaningful as root). Default: files belong to whoever restores. */
  preserveOwner?: boolean;
  label: string;
  /** Refuse an archive whose files hold more bytes than this (what the manifest records). */
  maxBytes?: number;
  /** Refuse entries nested deeper than this many path components. Default MAX_TREE_DEPTH. */
  maxDepth?: number;
  /** Told about entries that were changed to restore safely (absolute symlinks made relative). */
  onWarning?: (message: string) => void;
}

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

/**
 * Extracts a tar stream into `dir` (which must be a fresh, empty folder), refusing unsafe
 * entries: the first one aborts the extraction with an E_RESTORE error naming it. Modes are
 * restored exactly (no umask) but without setuid/setgid, ownership only with `preserveOwner`.
 * Absolute symlink targets are rewritten to point inside the tree (`rewriteAbsoluteSymlink`).
 * After extraction every symlink is followed to check it stays inside `dir`.
 */
export async function extractTree(input: Readable, dir: string, options: ExtractOptions): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  const preserveOwner = options.preserveOwner ?? false;
  const guard = new ExtractionGuard({ maxBytes: options.maxBytes, maxDepth: options.maxDepth });
  // The whole `tar` package only when a tree is extracted: commands that only pack or scan start faster.
  const { UnpackSync } = await import('tar');
  let refused: BackupError | undefined;
  let rewritten = 0;
  // chown clears setuid/setgid: with preserveOwner they are set again once owners are in place.
  const privileged: [string, number][] = [];
  const refuse = (entryPath: string, reason: string) =>
    new BackupError('E_RESTORE', `${options.label}: refused archive entry ${JSON.stringify(entryPath)}: ${reason}; nothing was restored`);
  const unpack = new UnpackSync({
    cwd: dir,
    strict: true,
    preserveOwner,
    processUmask: 0,
    preservePaths: false,
    filter: (_p: string, entry: unknown) => {
      const e = entry as ReadEntry;
      if (refused) return false;
      const reason = guard.check(e);
      if (reason) {
        refused = refuse(e.path, reason);
        unpack.abort(refused);
        return false;
      }
      if (e.type === 'SymbolicLink' && e.linkpath?.startsWith('/')) {
        e.linkpath = rewriteAbsoluteSymlink(e.path, e.linkpath);
        rewritten++;
      }
      const mode = restoredMode(e.mode, preserveOwner);
      if (mode !== undefined) e.mode = mode;
      if (mode !== undefined && mode & 0o6000 && e.type !== 'SymbolicLink') privileged.push([pathParts(e.path).join('/'), mode]);
      countEntry(stats, e);
      return true;
    },
  });
  try {
    await pipeline(input, unpack);
  } catch (err) {
    throw refused ?? wrapTarError(err, options.label);
  }
  if (refused) throw refused;
  await symlinksStayInside(dir, guard.symlinks, options.label);
  for (const [entry, mode] of privileged) await fsp.chmod(path.join(dir, entry), mode);
  if (rewritten) options.onWarning?.(`${options.label}: ${rewritten} absolute symlink(s) rewritten to point inside the restored tree`);
  return stats;
}

/**
 * Reads a tar stream to the end, checking its structure and that every entry would restore
 * safely, and counts what it holds.
 */
export async function scanTree(input: Readable, label: string): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  const guard = new ExtractionGuard();
  const { Parser } = await import('tar');
  let refused: BackupError | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      const reason = refused ? undefined : guard.check(entry);
      if (reason) {
        refused = new BackupError('E_INTEGRITY', `${label}: archive entry ${JSON.stringify(entry.path)} would be refused by a restore: ${reason}`);
        parser.abort(refused);
      }
      countEntry(stats, entry);
      entry.resume();
    },
  });
  try {
    await pipeline(input, parser);
  } catch (err) {
    throw refused ?? wrapTarError(err, label);
  }
  if (refused) throw refused;
  return stats;
}

function countEntry(stats: TreeStats, entry: ReadEntry): void {
  if (entry.type === 'Directory') stats.directories++;
  else if (entry.type === 'SymbolicLink') stats.symlinks++;
  else {
    stats.files++;
    stats.bytes += entry.size ?? 0;
  }
}

function wrapTarError(err: unknown, label: string): BackupError {
  if (err instanceof BackupError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return undecodableError(`${label}: the archive cannot be read: ${message}`, err);
}

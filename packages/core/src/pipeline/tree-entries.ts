import type { Stats } from 'node:fs';
import { lstatSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { BackupError } from '../errors.js';

/** One file system object a tree artifact may include. */
export interface TreeEntry {
  /** Absolute path on this machine. */
  absPath: string;
  /** Path inside the archive: the absolute path without its leading slash. */
  archivePath: string;
  type: 'file' | 'directory' | 'symlink';
  stat: Stats;
}

export interface WalkOptions {
  /** Return false to leave an entry out (for a folder: its whole subtree). */
  filter?: ((entry: TreeEntry) => boolean) | undefined;
  /** Told about what is skipped (sockets, FIFOs, devices). */
  onWarning?: ((message: string, entry: { absPath: string }) => void) | undefined;
}

/** The entries of the trees at `roots`, in archive order: each folder before its content, names sorted. */
export async function* walkTree(roots: readonly string[], options: WalkOptions): AsyncGenerator<TreeEntry> {
  const seen = new Set<string>();
  for (const root of roots) {
    if (!path.isAbsolute(root)) throw new BackupError('E_SOURCE', `path ${root} is not absolute`);
    const abs = path.resolve(root);
    if (seen.has(abs)) continue;
    seen.add(abs);
    const first = treeEntry(abs, await lstatOrFail(abs, 'path'), options);
    if (!first) continue;
    const stack: Folder[] = [new Folder([first])];
    while (stack.length) {
      const folder = stack.at(-1)!;
      const entry = folder.entries[folder.next++];
      if (!entry) {
        stack.pop();
        continue;
      }
      if (entry.type !== 'directory') {
        yield entry;
        continue;
      }
      let names: string[];
      try {
        names = await fsp.readdir(entry.absPath);
      } catch (err) {
        throw readError(err, entry.absPath, 'folder');
      }
      names.sort();
      const children = await childEntries(entry.absPath, names, options);
      yield entry;
      stack.push(new Folder(children));
    }
  }
}

/** The entries of one folder being archived, and the next one to archive. */
class Folder {
  readonly entries: TreeEntry[];
  next = 0;

  constructor(entries: TreeEntry[]) {
    this.entries = entries;
  }
}

/** The entries of a folder's children that are archived, in name order. */
async function childEntries(dir: string, names: string[], options: WalkOptions): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = [];
  for (const name of names) {
    const abs = path.join(dir, name);
    // Synchronous, like the small-file reads: a thread-pool trip costs more than an lstat.
    let stat: Stats;
    try {
      stat = lstatSync(abs);
    } catch (err) {
      throw readError(err, abs, 'file');
    }
    const entry = treeEntry(abs, stat, options);
    if (entry) entries.push(entry);
  }
  return entries;
}

/** The entry for a path, or undefined when it is left out (filtered, or a special file). */
function treeEntry(abs: string, stat: Stats, options: WalkOptions): TreeEntry | undefined {
  const type = entryType(stat);
  if (!type) {
    options.onWarning?.('skipped: not a regular file, folder or symlink (socket, FIFO or device)', { absPath: abs });
    return undefined;
  }
  const entry: TreeEntry = { absPath: abs, archivePath: abs === '/' ? '.' : abs.slice(1), type, stat };
  if (options.filter && !options.filter(entry)) return undefined;
  return entry;
}

async function lstatOrFail(abs: string, what: string): Promise<Stats> {
  try {
    return await fsp.lstat(abs);
  } catch (err) {
    throw readError(err, abs, what);
  }
}

export function readError(err: unknown, abs: string, what: string): BackupError {
  if (err instanceof BackupError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT'
      ? 'does not exist'
      : code === 'EACCES' || code === 'EPERM'
        ? 'cannot be read (permission denied)'
        : `cannot be read (${(err as Error).message})`;
  return new BackupError('E_SOURCE', `${what} ${abs} ${reason}`, { cause: err, details: { path: abs, errno: code } });
}

function entryType(stat: Stats): TreeEntry['type'] | undefined {
  if (stat.isFile()) return 'file';
  if (stat.isDirectory()) return 'directory';
  if (stat.isSymbolicLink()) return 'symlink';
  return undefined;
}

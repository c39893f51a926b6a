import type { Stats } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Header, Pax } from 'tar';
import { BackupError } from '../errors.js';
import type { TreeStats } from './tar-extract.js';

/** One file system object a tree artifact may include. */
export interface TreeEntry {
  /** Absolute path on this machine. */
  absPath: string;
  /** Path inside the archive: the absolute path without its leading slash. */
  archivePath: string;
  type: 'file' | 'directory' | 'symlink';
  stat: Stats;
}

export interface PackOptions {
  /** Return false to leave an entry out (for a folder: its whole subtree). */
  filter?: (entry: TreeEntry) => boolean;
  /** Return replacement content for a file (e.g. redacted), or null to store it as it is. */
  transform?: (entry: TreeEntry) => Promise<Buffer | null> | Buffer | null;
  /** Called for things that are skipped or changed while being read. */
  onWarning?: (message: string, entry: { absPath: string }) => void;
  /** Filled in as the archive is written: what it holds. */
  stats?: TreeStats;
}

const BLOCK = 512;
const READ_CHUNK = 1024 * 1024;

/**
 * Streams a POSIX tar (ustar with pax extensions for long or non-ASCII names and big sizes) of
 * the given absolute paths, keeping their absolute paths (without the leading slash) so that a
 * restore can put them back where they came from, under a target folder.
 *
 * Anything that cannot be read fails the stream with an E_SOURCE error naming the path: a
 * backup that silently misses files is worse than a failed one.
 */
export function packTree(roots: readonly string[], options: PackOptions = {}): Readable {
  return Readable.from(generateTar(roots, options), { objectMode: false, highWaterMark: 4 * READ_CHUNK });
}

async function* generateTar(roots: readonly string[], options: PackOptions): AsyncGenerator<Buffer> {
  const seen = new Set<string>();
  for (const root of roots) {
    if (!path.isAbsolute(root)) throw new BackupError('E_SOURCE', `path ${root} is not absolute`);
    const abs = path.resolve(root);
    if (seen.has(abs)) continue;
    seen.add(abs);
    const stat = await lstatOrFail(abs, 'path');
    yield* walk(abs, stat, options);
  }
  yield Buffer.alloc(BLOCK * 2);
}

async function lstatOrFail(abs: string, what: string): Promise<Stats> {
  try {
    return await fsp.lstat(abs);
  } catch (err) {
    throw readError(err, abs, what);
  }
}

function readError(err: unknown, abs: string, what: string): BackupError {
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

async function* walk(abs: string, stat: Stats, options: PackOptions): AsyncGenerator<Buffer> {
  const type = entryType(stat);
  if (!type) {
    options.onWarning?.('skipped: not a regular file, folder or symlink (socket, FIFO or device)', { absPath: abs });
    return;
  }
  const archivePath = abs === '/' ? '.' : abs.slice(1);
  const entry: TreeEntry = { absPath: abs, archivePath, type, stat };
  if (options.filter && !options.filter(entry)) return;

  if (type === 'directory') {
    let names: string[];
    try {
      names = await fsp.readdir(abs);
    } catch (err) {
      throw readError(err, abs, 'folder');
    }
    yield header(entry, `${archivePath}/`, 0);
    if (options.stats) options.stats.directories++;
    names.sort();
    for (const name of names) {
      const child = path.join(abs, name);
      yield* walk(child, await lstatOrFail(child, 'file'), options);
    }
    return;
  }

  if (type === 'symlink') {
    let target: string;
    try {
      target = await fsp.readlink(abs);
    } catch (err) {
      throw readError(err, abs, 'symlink');
    }
    yield header(entry, archivePath, 0, target);
    if (options.stats) options.stats.symlinks++;
    return;
  }

  const replacement = options.transform ? await options.transform(entry) : null;
  if (options.stats) {
    options.stats.files++;
    options.stats.bytes += replacement ? replacement.length : entry.stat.size;
  }
  if (replacement) {
    yield header(entry, archivePath, replacement.length);
    yield replacement;
    const pad = padding(replacement.length);
    if (pad) yield pad;
    return;
  }
  yield* fileBody(entry, archivePath, options);
}

async function* fileBody(entry: TreeEntry, archivePath: string, options: PackOptions): AsyncGenerator<Buffer> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(entry.absPath, 'r');
  } catch (err) {
    throw readError(err, entry.absPath, 'file');
  }
  try {
    // The size in the header is the size when we started; a file that changes while we read it
    // is cut or padded to that size (as GNU tar does) and reported.
    const size = entry.stat.size;
    yield header(entry, archivePath, size);
    let remaining = size;
    while (remaining > 0) {
      const want = Math.min(remaining, READ_CHUNK);
      const buffer = Buffer.allocUnsafe(want);
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(buffer, 0, want, size - remaining));
      } catch (err) {
        throw readError(err, entry.absPath, 'file');
      }
      if (bytesRead === 0) {
        options.onWarning?.(`file shrank while being read; padded with zeros to ${size} bytes`, entry);
        let zeros = remaining;
        while (zeros > 0) {
          const n = Math.min(zeros, READ_CHUNK);
          yield Buffer.alloc(n);
          zeros -= n;
        }
        remaining = 0;
        break;
      }
      remaining -= bytesRead;
      yield bytesRead === want ? buffer : buffer.subarray(0, bytesRead);
    }
    const after = await handle.stat();
    if (after.size > size) options.onWarning?.(`file grew while being read; stored its first ${size} bytes`, entry);
    const pad = padding(size);
    if (pad) yield pad;
  } finally {
    await handle.close();
  }
}

function padding(size: number): Buffer | undefined {
  const rest = size % BLOCK;
  return rest ? Buffer.alloc(BLOCK - rest) : undefined;
}

const typeNames = { file: 'File', directory: 'Directory', symlink: 'SymbolicLink' } as const;

function header(entry: TreeEntry, archivePath: string, size: number, linkpath?: string): Buffer {
  const { stat } = entry;
  const data = {
    path: archivePath,
    mode: stat.mode & 0o7777,
    uid: stat.uid,
    gid: stat.gid,
    size,
    mtime: stat.mtime,
    type: typeNames[entry.type],
    ...(linkpath !== undefined ? { linkpath } : {}),
    uname: '',
    gname: '',
  };
  const h = new Header(data);
  const needPax = h.encode();
  if (!h.block) throw new BackupError('E_ARCHIVE', `could not encode a tar header for ${entry.absPath}`);
  if (!needPax) return h.block;
  const pax = new Pax({
    path: archivePath,
    ...(linkpath !== undefined ? { linkpath } : {}),
    size,
    mtime: stat.mtime,
    uid: stat.uid,
    gid: stat.gid,
  }).encode();
  return Buffer.concat([pax, h.block]);
}

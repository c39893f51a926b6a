import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { BackupError } from './errors.js';

/** Everything the tool writes is private, whatever the umask. */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/**
 * Creates a folder and any missing parents, each 0700 (chmod after mkdir, since mkdir's mode
 * is masked by the umask). Parents that already exist are left alone. Resolves with the folders
 * it created, outermost first.
 */
export async function ensureDir(dir: string, mode = DIR_MODE): Promise<string[]> {
  const missing: string[] = [];
  let current = path.resolve(dir);
  for (;;) {
    try {
      const st = await fsp.stat(current);
      if (!st.isDirectory()) throw Object.assign(new Error(`${current} exists and is not a folder`), { code: 'ENOTDIR' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(current);
      const parent = path.dirname(current);
      if (parent === current) break;
      current = parent;
    }
  }
  const created: string[] = [];
  for (const d of missing.reverse()) {
    try {
      await fsp.mkdir(d);
      created.push(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await fsp.chmod(d, mode);
  }
  return created;
}

const OPEN_FLAGS: Record<string, number> = {
  r: constants.O_RDONLY,
  w: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
  wx: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
  a: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
};

/**
 * Opens one of the tool's own files without following a symbolic link at its name (a link
 * planted there fails with a clear error instead of sending the write elsewhere), and refuses
 * anything but a regular file with one name (a hard link to another file).
 */
export async function openOwnFile(file: string, flags: keyof typeof OPEN_FLAGS, mode = FILE_MODE): Promise<fsp.FileHandle> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, OPEN_FLAGS[flags]! | constants.O_NOFOLLOW, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw linkRefused(file);
    throw err;
  }
  try {
    const st = await handle.stat();
    // A second name matters only for a write: it would change another file too.
    if (!st.isFile() || (flags !== 'r' && st.nlink > 1)) {
      throw new BackupError('E_CONFIG', `${file} is not a plain file of its own (${st.isFile() ? `${st.nlink} hard links` : 'not a regular file'}): the tool does not write through it; remove it`);
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

/** Reads one of the tool's own files without following a symbolic link at its name. */
export async function readOwnFile(file: string): Promise<string> {
  const handle = await openOwnFile(file, 'r');
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Opens a file for writing with mode 0600 regardless of the umask, never through a symbolic link. */
export async function openPrivate(file: string, flags: 'wx' | 'w' | 'a' = 'wx'): Promise<fsp.FileHandle> {
  const handle = await openOwnFile(file, flags);
  try {
    await handle.chmod(FILE_MODE);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

export function linkRefused(p: string): BackupError {
  return new BackupError('E_CONFIG', `${p} is a symbolic link: the tool never follows links inside its own folders (one may have been planted); remove it`, {
    details: { path: p },
  });
}

/**
 * Refuses a path below `root` that passes through a symbolic link (`root` itself may be one):
 * for names inside a folder the tool owns, where a planted link would send a read or a deletion
 * elsewhere. Missing components are fine.
 */
export async function checkNoLinkBelow(root: string, file: string): Promise<void> {
  const rel = path.relative(root, file);
  let current = root;
  for (const part of rel.split(path.sep).slice(0, -1)) {
    current = path.join(current, part);
    const st = await fsp.lstat(current).catch(() => undefined);
    if (!st) return;
    if (st.isSymbolicLink()) throw linkRefused(current);
  }
}

/**
 * Makes sure `root/<parts...>` is a chain of real folders, creating missing ones 0700: a symbolic
 * link below `root` is refused, never followed (`root` itself may be one). Resolves with the path.
 */
export async function ensureInside(root: string, ...parts: string[]): Promise<string> {
  let current = root;
  for (const part of parts.flatMap((p) => p.split('/')).filter(Boolean)) {
    current = path.join(current, part);
    let st = await fsp.lstat(current).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st) {
      try {
        await fsp.mkdir(current, DIR_MODE);
        await fsp.chmod(current, DIR_MODE);
        continue;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        st = await fsp.lstat(current);
      }
    }
    if (st.isSymbolicLink()) throw linkRefused(current);
    if (!st.isDirectory()) throw Object.assign(new Error(`${current} exists and is not a folder`), { code: 'ENOTDIR' });
  }
  return current;
}

export async function fsyncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await handle.sync();
  } catch (err) {
    // Some filesystems (and platforms) cannot fsync a folder; the rename is still atomic there.
    if (!['EINVAL', 'EPERM', 'EISDIR', 'ENOTSUP'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * Replaces `file` so that readers see either the old content or the whole new one, never a part:
 * `write` fills a private temporary file beside it (`tmp`, by default `<file>.tmp-<random>`), which
 * is synced and renamed over `file`; on failure the temporary file is removed.
 */
export async function replaceFile(file: string, write: (handle: fsp.FileHandle) => Promise<unknown>, tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`): Promise<void> {
  const handle = await openPrivate(tmp);
  try {
    await write(handle);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/** Writes a file atomically (see `replaceFile`). */
export function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  return replaceFile(file, (handle) => handle.writeFile(data));
}

export async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    const handle = await fsp.opendir(dir);
    try {
      return (await handle.read()) === null;
    } finally {
      await handle.close().catch(() => {});
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

export async function pathExists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Expands a leading `~/` to the home folder. */
export function expandHome(p: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(process.env.HOME ?? '/', p.slice(1));
  return p;
}

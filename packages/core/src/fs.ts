import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';

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

/** Opens a new file for writing with mode 0600 regardless of the umask. */
export async function openPrivate(file: string, flags = 'wx'): Promise<fsp.FileHandle> {
  const handle = await fsp.open(file, flags, FILE_MODE);
  try {
    await handle.chmod(FILE_MODE);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
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

import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupError } from './errors.js';
import { checkNoLinkBelow, ensureDir, ensureInside, linkRefused, replaceFile } from './fs.js';
import { FileSink } from './pipeline/file-sink.js';

export interface ObjectInfo {
  /** The key relative to the destination's root, `/`-separated: `snapshots/<id>/manifest.json`. */
  key: string;
  size: number;
  modified?: Date;
}

export interface PutInfo {
  /** The size of the body, when known (lets object stores plan multipart uploads). */
  size?: number;
  /** The sha256 of the body, hex, when known (lets a destination check the upload end to end). */
  sha256?: string;
}

/**
 * A dumb object store. The repository layout, manifest-last uploads, retries, retention and
 * verification are written once in core over this interface; a destination only moves bytes.
 *
 * Contract:
 * - `put` is atomic: after a failure or a crash nothing is left under `key` (a previous object
 *   under `key` stays whole or is replaced whole).
 * - `get` of a missing key and `delete` of a missing key: `get` throws a BackupError with code
 *   `E_NOT_FOUND`; `delete` succeeds.
 * - `list(prefix)` returns every object whose key starts with `prefix`, in any order, and
 *   never an in-progress upload.
 * - Keys are relative, `/`-separated, without `.` or `..` segments; they may hold any Unicode.
 */
export interface Destination {
  /** What to call it in messages, without secrets: `local:/mnt/drive`, `s3://bucket/prefix/`. */
  readonly description: string;
  put(key: string, body: Readable, info?: PutInfo): Promise<void>;
  get(key: string): Promise<Readable>;
  /**
   * `length` bytes of an object from `offset` (a restic repository reads one blob of a pack this
   * way). Optional: without it, readers take `get` and skip to the range (see `getRange`). A range
   * past the end yields fewer bytes; a missing key throws like `get`.
   */
  getRange?(key: string, offset: number, length: number): Promise<Readable>;
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Space used and available on the medium, where it can tell. */
  usage?(): Promise<StorageUsage | undefined>;
  /** Releases connections. */
  close?(): Promise<void>;
}

export interface StorageUsage {
  usedBytes: number;
  totalBytes: number;
}

/** How a destination counts toward 3-2-1: its kind of medium, and whether it is off site. */
export interface DestinationTraits {
  medium: 'local-disk' | 'external-disk' | 'network-share' | 'object-store' | 'remote-server';
  offsite: boolean;
}

/** Checks a key and returns its segments; throws on absolute keys, `.` / `..` segments and NULs. */
export function checkKey(key: string): string[] {
  const parts = key.split('/');
  if (
    !key ||
    key.startsWith('/') ||
    key.includes('\0') ||
    key.includes('\\') ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new BackupError('E_DESTINATION', `invalid object key ${JSON.stringify(key)}`);
  }
  return parts;
}

const TMP_MARK = '.tmp-';

/** A folder on a mounted file system. Used for backupRoot itself and by the `local` plugin. */
export class LocalDestination implements Destination {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = `local:${this.root}`;
  }

  path(key: string): string {
    return path.join(this.root, ...checkKey(key));
  }

  async put(key: string, body: Readable, _info?: PutInfo): Promise<void> {
    const file = this.path(key);
    // The root may be a link (a mount point's); below it the folders are the tool's: no links.
    await ensureDir(this.root);
    const dir = await ensureInside(this.root, ...checkKey(key).slice(0, -1));
    // A hidden temporary name that list() skips, so an upload in progress is never listed.
    const tmp = path.join(dir, `.${path.basename(file).slice(0, 100)}${TMP_MARK}${randomBytes(6).toString('hex')}`);
    await replaceFile(file, (handle) => pipeline(body, new FileSink(handle)), tmp);
  }

  async get(key: string): Promise<Readable> {
    const handle = await this.open(key);
    return handle.createReadStream({ highWaterMark: 1024 * 1024 });
  }

  /** Opens an object's file for reading, never through a link below the root. */
  async open(key: string): Promise<fsp.FileHandle> {
    const file = this.path(key);
    await checkNoLinkBelow(this.root, file);
    return fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new BackupError('E_NOT_FOUND', `${this.description}: ${key} does not exist`);
      if (err.code === 'ELOOP') throw linkRefused(file);
      throw err;
    });
  }

  async getRange(key: string, offset: number, length: number): Promise<Readable> {
    const handle = await this.open(key);
    if (length <= 0) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({ start: offset, end: offset + length - 1, highWaterMark: Math.min(length, 1024 * 1024) });
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    // Walk only the folder the prefix points into, then filter by the full prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash) : '';
    const start = base ? path.join(this.root, ...checkKey(base)) : this.root;
    // The walk below never enters a link; the folders leading to where it starts must not be one either.
    await checkNoLinkBelow(this.root, path.join(start, 'entry'));
    const out: ObjectInfo[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw err;
      }
      for (const entry of entries) {
        const key = keyPrefix ? `${keyPrefix}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(path.join(dir, entry.name), key);
        } else if (entry.isFile() && !entry.name.includes(TMP_MARK) && key.startsWith(prefix)) {
          const st = await fsp.stat(path.join(dir, entry.name)).catch(() => undefined);
          if (st) out.push({ key, size: st.size, modified: st.mtime });
        }
      }
    };
    await walk(start, base);
    return out;
  }

  async delete(key: string): Promise<void> {
    const file = this.path(key);
    await checkNoLinkBelow(this.root, file);
    await fsp.rm(file, { force: true });
    // Remove folders the deletion left empty, up to the root.
    let dir = path.dirname(file);
    while (dir.startsWith(this.root + path.sep)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        break;
      }
      dir = path.dirname(dir);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await fsp.stat(this.path(key));
      return st.isFile() ? { key, size: st.size, modified: st.mtime } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async usage(): Promise<StorageUsage | undefined> {
    let dir = this.root;
    // statfs needs an existing path; the root may not exist yet.
    for (;;) {
      try {
        const st = await fsp.statfs(dir);
        return { totalBytes: st.blocks * st.bsize, usedBytes: (st.blocks - st.bfree) * st.bsize };
      } catch (err) {
        const parent = path.dirname(dir);
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) return undefined;
        dir = parent;
      }
    }
  }
}

/** A destination that serves through another (`inner`): space and closing pass straight through. */
export abstract class DestinationWrapper implements Destination {
  readonly inner: Destination;

  constructor(inner: Destination) {
    this.inner = inner;
  }

  abstract readonly description: string;
  abstract put(key: string, body: Readable, info?: PutInfo): Promise<void>;
  abstract get(key: string): Promise<Readable>;
  abstract list(prefix: string): Promise<ObjectInfo[]>;
  abstract delete(key: string): Promise<void>;
  abstract stat(key: string): Promise<ObjectInfo | undefined>;

  usage(): Promise<StorageUsage | undefined> {
    return this.inner.usage ? this.inner.usage() : Promise.resolve(undefined);
  }

  close(): Promise<void> {
    return this.inner.close ? this.inner.close() : Promise.resolve();
  }
}

/** A destination seen under a key prefix (`<host>/` by default), so many hosts share one store. */
export class PrefixedDestination extends DestinationWrapper {
  readonly prefix: string;
  readonly description: string;

  constructor(inner: Destination, prefix: string) {
    super(inner);
    const clean = prefix.replace(/^\/+/, '');
    if (clean) checkKey(clean.replace(/\/+$/, ''));
    this.prefix = clean && !clean.endsWith('/') ? `${clean}/` : clean;
    this.description = this.prefix ? `${inner.description}${inner.description.endsWith('/') ? '' : '/'}${this.prefix}` : inner.description;
  }

  put(key: string, body: Readable, info?: PutInfo): Promise<void> {
    return this.inner.put(this.prefix + key, body, info);
  }

  get(key: string): Promise<Readable> {
    return this.inner.get(this.prefix + key);
  }

  getRange(key: string, offset: number, length: number): Promise<Readable> {
    return getRange(this.inner, this.prefix + key, offset, length);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const n = this.prefix.length;
    return (await this.inner.list(this.prefix + prefix)).map((o) => ({ ...o, key: o.key.slice(n) }));
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(this.prefix + key);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const info = await this.inner.stat(this.prefix + key);
    return info && { ...info, key };
  }

}

/** A range of an object: through the destination's `getRange`, or by skipping through `get`. */
export async function getRange(destination: Destination, key: string, offset: number, length: number): Promise<Readable> {
  if (destination.getRange) return destination.getRange(key, offset, length);
  return Readable.from(skipTo(await destination.get(key), offset, length), { objectMode: false });
}

async function* skipTo(body: Readable, offset: number, length: number): AsyncGenerator<Buffer> {
  let pos = 0;
  const end = offset + length;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const from = Math.max(offset - pos, 0);
      const to = Math.min(end - pos, chunk.length);
      if (to > from) yield chunk.subarray(from, to);
      pos += chunk.length;
      if (pos >= end) break;
    }
  } finally {
    body.destroy();
  }
}

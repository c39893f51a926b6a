/**
 * Repositories holding archives our packer would never write (`../x`, FIFOs, hardlinks, bombs),
 * with correct sizes and sha256 in the manifest: what an attacker with write access to a
 * destination could plant, to test that a restore refuses them.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { serializeManifest, type Manifest } from '../../packages/core/src/manifest.js';
import { createCompressor } from '../../packages/core/src/pipeline/compression.js';
import { makeSnapshotId } from '../../packages/core/src/snapshot-id.js';
import { Header, Pax } from 'tar';

export interface CraftedEntry {
  path: string;
  type: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice';
  /** File content; or `zeros` bytes of zeros, produced lazily (a bomb). */
  body?: string | Buffer;
  zeros?: number;
  linkpath?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

function header(e: CraftedEntry, size: number): Buffer {
  const data = {
    path: e.path,
    type: e.type,
    size,
    mode: e.mode ?? (e.type === 'Directory' ? 0o755 : 0o644),
    mtime: new Date('2026-01-01T00:00:00Z'),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
  };
  // tar's Header.encode is slow on very long paths (it searches for a ustar prefix split): a
  // long path goes in a pax header, the ustar header gets a placeholder.
  const long = e.path.length > 99 || (e.linkpath?.length ?? 0) > 99;
  const h = new Header(long ? { ...data, path: 'long-name', ...(e.linkpath !== undefined ? { linkpath: 'long-name' } : {}) } : data);
  const needPax = h.encode() || long;
  const pax = needPax ? new Pax({ path: e.path, ...(e.linkpath ? { linkpath: e.linkpath } : {}), size }).encode() : Buffer.alloc(0);
  return Buffer.concat([pax, h.block!]);
}

/** A tar stream of the entries, written header by header. */
export function craftedTar(entries: CraftedEntry[]): Readable {
  return Readable.from(
    (function* () {
      for (const e of entries) {
        const body = e.body === undefined ? undefined : Buffer.from(e.body);
        const size = e.type === 'File' ? (body?.length ?? e.zeros ?? 0) : 0;
        yield header(e, size);
        if (body) yield body;
        else if (e.zeros) {
          const chunk = Buffer.alloc(1024 * 1024);
          for (let left = e.zeros; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
        }
        if (size % 512) yield Buffer.alloc(512 - (size % 512));
      }
      yield Buffer.alloc(1024);
    })(),
  );
}

export interface CraftedSnapshot {
  id: string;
  file: string;
  /** The decoded (tar) size, as a manifest written by the tool would record it. */
  rawBytes: number;
}

/**
 * Writes `<backupRoot>/snapshots/<id>/{<source>.tar.zst, manifest.json}` with a valid sha256 and
 * size. `manifest` adjusts the artifact record (to lie about rawBytes or entries).
 */
export async function writeCraftedSnapshot(
  backupRoot: string,
  source: string,
  entries: CraftedEntry[],
  adjust: (record: Manifest['artifacts'][number]) => void = () => {},
): Promise<CraftedSnapshot> {
  const started = new Date();
  const id = makeSnapshotId(started, 'default');
  const dir = path.join(backupRoot, 'snapshots', id);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = `${source}.tar.zst`;
  let rawBytes = 0;
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(
    craftedTar(entries),
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        rawBytes += chunk.length;
        cb(null, chunk);
      },
    }),
    createCompressor('zstd')!,
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        cb(null, chunk);
      },
    }),
    (await fsp.open(path.join(dir, file), 'wx', 0o600)).createWriteStream(),
  );
  const record: Manifest['artifacts'][number] = {
    source,
    plugin: 'files',
    file,
    type: 'tree',
    bytes,
    sha256: hash.digest('hex'),
    rawBytes,
    compression: 'zstd',
    encryption: null,
    meta: {
      entries: {
        files: entries.filter((e) => e.type === 'File').length,
        directories: entries.filter((e) => e.type === 'Directory').length,
        symlinks: entries.filter((e) => e.type === 'SymbolicLink').length,
        bytes: entries.reduce((s, e) => s + (e.type === 'File' ? (e.body?.length ?? e.zeros ?? 0) : 0), 0),
      },
    },
  };
  adjust(record);
  const manifest: Manifest = {
    formatVersion: 1,
    id,
    profile: 'default',
    host: 'crafted',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    tool: { name: 'sutazai-backup', version: '0.1.0' },
    artifacts: [record],
  };
  await fsp.writeFile(path.join(dir, 'manifest.json'), serializeManifest(manifest), { mode: 0o600 });
  return { id, file, rawBytes };
}

/** Every path under `dir` (relative), with its type: to show that nothing appeared or changed. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    const abs = path.join(dir, rel);
    let st;
    try {
      st = await fsp.lstat(abs);
    } catch {
      return;
    }
    out.push(`${rel || '.'}:${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'}`);
    if (st.isDirectory()) for (const name of (await fsp.readdir(abs)).sort()) await walk(path.join(rel, name));
  }
  await walk('');
  return out;
}

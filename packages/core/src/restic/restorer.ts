import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { BackupError } from '../errors.js';
import { restoredMode, symlinksStayInside, type TreeStats } from '../pipeline/tar-extract.js';
import { parseGoTime } from './go-json.js';
import { unixPermissions, type ResticNode } from './node.js';
import { RestoreGuard, linkRoot, safeLinkTarget, type GuardLimits } from './restore-guard.js';
import { FileContentWriter } from './file-content.js';
import type { BlobStore } from './store.js';
import { nameBytes } from './tree.js';
import { findPath, loadTree } from './walk.js';

export interface RestoreOptions extends GuardLimits {
  store: BlobStore;
  /** The snapshot's tree. */
  rootTree: string;
  /** What to restore: `/` (default), `/<source>`, or a path inside a source. Kept at its full path below `target`. */
  include?: string;
  /** A folder that does not exist yet or is empty. */
  target: string;
  /** Names the restore in errors and warnings (e.g. `snapshot 1a2b3c4d`). */
  label: string;
  /** Keep uids, gids and setuid/setgid bits (as root). Default: files belong to whoever restores. */
  preserveOwner?: boolean;
  /**
   * How many leading folders hold a tree's absolute paths, for rewriting absolute symlinks:
   * 1 for this tool's snapshots (`/<source>/...`, the default), 0 for snapshots restic made.
   */
  linkRootDepth?: number;
  onWarning?: (message: string) => void;
}

interface Pending {
  at: string | Buffer;
  node: ResticNode;
}

/** A path below `dir` for a node: names that are not UTF-8 keep their bytes. */
function childPath(dir: string | Buffer, node: ResticNode): string | Buffer {
  if (!node.rawName && typeof dir === 'string') return path.join(dir, node.name);
  return Buffer.concat([Buffer.from(dir), Buffer.from('/'), nameBytes(node)]);
}

/** Timestamps for utimes: libuv keeps microseconds; half a microsecond more keeps the right one. */
function seconds(time: string): number {
  const ns = parseGoTime(time);
  return Number(ns / 1000n) / 1e6 + 5e-7;
}

/**
 * Writes a snapshot (or one path of it) into a fresh folder: files byte for byte with their
 * modes and times, folders, symlinks (created, never followed), after checking every tree
 * (RestoreGuard) and that the target has room. Device nodes, FIFOs and sockets are left out with
 * a warning, as are extended attributes. On any failure, what was written is removed.
 */
export async function restoreSnapshot(options: RestoreOptions): Promise<TreeStats> {
  const chain = await findPath(options.store, options.rootTree, options.include ?? '/');
  const restorer = new Restorer(options, chain);
  await restorer.check();
  const created = await prepareTarget(options.target, options.label);
  try {
    return await restorer.write();
  } catch (err) {
    await clearTarget(options.target, created);
    throw err;
  }
}

/** Makes sure the target is an empty folder; returns the first folder the restore created, if any. */
async function prepareTarget(target: string, label: string): Promise<string | undefined> {
  const created = await fsp.mkdir(target, { recursive: true, mode: 0o700 });
  const present = await fsp.readdir(target);
  if (present.length) throw new BackupError('E_RESTORE', `${label}: ${target} is not empty; restore into a new folder`);
  return created;
}

/** Removes what a failed restore wrote, and the folders it created for it. */
async function clearTarget(target: string, created: string | undefined): Promise<void> {
  if (created) await fsp.rm(created, { recursive: true, force: true });
  else for (const name of await fsp.readdir(target).catch(() => [])) await fsp.rm(path.join(target, name), { recursive: true, force: true });
}

class Restorer {
  readonly #o: RestoreOptions;
  readonly #chain: ResticNode[];
  readonly #guard: RestoreGuard;
  readonly #rootDepth: number;
  readonly #stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  #totalBytes = 0;

  constructor(options: RestoreOptions, chain: ResticNode[]) {
    this.#o = options;
    this.#chain = chain;
    this.#guard = new RestoreGuard(options.label, options);
    this.#rootDepth = options.linkRootDepth ?? 1;
  }

  /** The selection's own folders on the way (`/files/etc` for `/files/etc/app`) and where its walk starts. */
  #start(): { parts: string[]; tree?: string; node?: ResticNode } {
    const parts = this.#chain.map((n) => n.name);
    const last = this.#chain.at(-1);
    if (!last) return { parts: [], tree: this.#o.rootTree };
    return { parts: parts.slice(0, -1), node: last };
  }

  /** The first pass: every tree checked, sizes added up, data blobs present; nothing written. */
  async check(): Promise<void> {
    const guard = this.#guard;
    const visit = async (parts: string[], nodes: ResticNode[], rawAbove: boolean): Promise<void> => {
      guard.checkTree(parts, nodes);
      for (const node of nodes) {
        const here = [...parts, node.name];
        const raw = rawAbove || node.rawName !== undefined;
        if (node.type === 'symlink') safeLinkTarget(guard, here, node, this.#rootDepth, raw);
        if (node.type === 'file') this.#checkFile(here, node);
        if (node.type === 'dir') await visit(here, await loadTree(this.#o.store, node.subtree!), raw);
      }
    };
    const { parts, tree, node } = this.#start();
    const rawChain = this.#chain.slice(0, -1).some((n) => n.rawName !== undefined);
    for (const [i, folder] of this.#chain.slice(0, -1).entries()) guard.checkTree(parts.slice(0, i), [folder]);
    if (tree) await visit(parts, await loadTree(this.#o.store, tree), rawChain);
    else await visit(parts, [node!], rawChain);
    const free = await fsp.statfs(await existingParent(this.#o.target)).then((s) => s.bavail * s.bsize).catch(() => Infinity);
    if (this.#totalBytes > free) {
      throw new BackupError('E_RESTORE', `${this.#o.label}: the restore needs ${this.#totalBytes} bytes, ${this.#o.target} has ${free} free; nothing was restored`);
    }
  }

  /** A file's blobs are all held and add up to its size. */
  #checkFile(here: string[], node: ResticNode): void {
    const { store, label } = this.#o;
    const expected = node.size ?? 0;
    this.#totalBytes += expected;
    let held = 0;
    for (const id of node.content ?? []) {
      const size = store.plaintextSize('data', id);
      if (size === undefined) throw new BackupError('E_INTEGRITY', `${label}: ${here.join('/')}: data blob ${id} is not in the repository; nothing was restored`);
      held += size;
    }
    if (held !== expected) {
      throw new BackupError('E_INTEGRITY', `${label}: ${here.join('/')}: its blobs hold ${held} bytes, its node says ${expected}; nothing was restored`);
    }
  }

  /** The second pass: the trees again (unchanged: blobs are addressed by their hash), written. */
  async write(): Promise<TreeStats> {
    const dirs: Pending[] = [];
    const links = new Map<string, string[]>();
    const files = new FileContentWriter(this.#o.store, this.#o.label, async (handle, file) => {
      await this.#metadata(handle, file.node);
      this.#stats.files++;
      this.#stats.bytes += file.node.size ?? 0;
    });
    let rewritten = 0;
    const visit = async (parts: string[], dir: string | Buffer, nodes: ResticNode[]): Promise<void> => {
      for (const node of nodes) {
        const here = [...parts, node.name];
        const at = childPath(dir, node);
        if (!this.#guard.verdict(node).write) continue;
        if (node.type === 'dir') {
          await fsp.mkdir(at, { mode: 0o700 });
          dirs.push({ at, node });
          this.#stats.directories++;
          await visit(here, at, await loadTree(this.#o.store, node.subtree!));
        } else if (node.type === 'symlink') {
          const link = safeLinkTarget(this.#guard, here, node, this.#rootDepth, Buffer.isBuffer(at));
          if (link.rewritten) rewritten++;
          await fsp.symlink(node.linkTargetRaw && !link.rewritten ? node.linkTargetRaw : link.target, at);
          await this.#metadata(at, node);
          this.#stats.symlinks++;
          if (Buffer.isBuffer(at)) continue; // checked without following (restore-guard: no ".." below such names)
          const { root, inside } = linkRoot(here, this.#rootDepth);
          const key = root.join('/');
          links.set(key, [...(links.get(key) ?? []), inside]);
        } else {
          await files.add({ at, here, node });
        }
      }
    };
    const { parts, tree, node } = this.#start();
    let dir: string | Buffer = this.#o.target;
    for (const folder of this.#chain.slice(0, -1)) {
      dir = childPath(dir, folder);
      await fsp.mkdir(dir, { mode: 0o700 });
      dirs.push({ at: dir, node: folder });
    }
    try {
      if (tree) await visit(parts, dir, await loadTree(this.#o.store, tree));
      else await visit(parts, dir, [node!]);
      await files.flush();
    } catch (err) {
      await files.abort();
      throw err;
    }
    for (const [root, inside] of links) await symlinksStayInside(path.join(this.#o.target, ...root.split('/').filter(Boolean)), inside, this.#o.label);
    // Deepest first: writing into a folder changes its mtime, and a read-only folder takes no more entries.
    for (const d of dirs.reverse()) await this.#metadata(d.at, d.node);
    this.#warn(rewritten);
    return this.#stats;
  }

  #warn(rewritten: number): void {
    const { label, onWarning } = this.#o;
    if (!onWarning) return;
    if (rewritten) onWarning(`${label}: ${rewritten} absolute symlink(s) rewritten to point inside the restored tree`);
    if (this.#guard.leftOut) onWarning(`${label}: ${this.#guard.leftOut} device node(s), FIFO(s) or socket(s) left out`);
    if (this.#guard.withAttributes) onWarning(`${label}: extended attributes of ${this.#guard.withAttributes} entr(ies) not restored`);
  }

  /** Owner, mode and times of a written entry (a symlink's mode is not its own to set). */
  async #metadata(at: string | Buffer | fsp.FileHandle, node: ResticNode): Promise<void> {
    const preserve = this.#o.preserveOwner ?? false;
    const isLink = node.type === 'symlink';
    const handle = typeof at === 'object' && !Buffer.isBuffer(at) ? at : undefined;
    const target = at as string | Buffer;
    if (preserve) {
      if (handle) await handle.chown(node.uid, node.gid);
      else await fsp.lchown(target, node.uid, node.gid);
    }
    if (!isLink) {
      const mode = restoredMode(unixPermissions(node.mode ?? 0), preserve)!;
      if (handle) await handle.chmod(mode);
      else await fsp.chmod(target, mode);
    }
    const atime = seconds(node.atime);
    const mtime = seconds(node.mtime);
    if (handle) await handle.utimes(atime, mtime);
    else if (isLink) await fsp.lutimes(target, atime, mtime);
    else await fsp.utimes(target, atime, mtime);
  }
}

async function existingParent(dir: string): Promise<string> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (await fsp.stat(d).then(() => true, () => false)) return d;
    if (d === path.dirname(d)) return d;
  }
}

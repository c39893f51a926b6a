import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BackupError } from '../errors.js';
import type { ContentChunker } from './chunker.js';
import { ContentSaver, emptyStats, type ArchiveStats, type ContentSaverOptions } from './content-saver.js';
import { formatGoTime } from './go-json.js';
import { GoMode, type ResticNode } from './node.js';
import { nowNs } from './snapshot.js';
import type { BlobStore } from './store.js';
import { blobId, encodeTree } from './tree.js';
import { TreeWalker, type WalkOptions } from './tree-walker.js';
import { ParentTrees } from './parent-trees.js';

export interface ArchiverOptions extends ContentSaverOptions, Pick<WalkOptions, 'onError' | 'forceRead' | 'files' | 'folders' | 'exclude'> {
  store: BlobStore;
  /** Makes the chunker for one file at a time (see fastcdc.ts, rabin.ts). */
  chunker: () => ContentChunker;
  /** The parent snapshot's tree: files unchanged since (path, size, mtime, ctime, inode) are not read. */
  parentTree?: string;
  /** The snapshot's time (nanoseconds), also the time of its virtual folders and streams. */
  timeNs?: bigint;
}

export interface StreamOptions {
  /** Unix permission bits of the file node. Default 0600: a database dump is nobody else's. */
  mode?: number;
}

/** A source name or a stream's file name: one path component. */
function checkName(name: string, what: string): void {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new BackupError('E_USAGE', `${what} ${JSON.stringify(name)} cannot be a folder or file name in a snapshot`);
  }
}

/**
 * Builds one restic snapshot tree from several sources, each a top-level folder: a files
 * source's paths appear as `/<source>/<absolute path>` (folders on the way have their real
 * metadata, as in restic), a stream (a database dump) as the file `/<source>/<name>`. Data and
 * tree blobs go to the BlobStore as they are made; `finish` saves the root tree and returns its id,
 * to be written into a snapshot after `store.flush()`.
 */
export class Archiver {
  readonly stats: ArchiveStats = emptyStats();
  readonly #store: BlobStore;
  readonly #saver: ContentSaver;
  readonly #walker: TreeWalker;
  readonly #parents: ParentTrees;
  readonly #timeNs: bigint;
  /** Each source's top-level entries, by name. */
  readonly #sources = new Map<string, Map<string, Promise<ResticNode | undefined>>>();

  constructor(options: ArchiverOptions) {
    this.#store = options.store;
    this.#timeNs = options.timeNs ?? nowNs();
    this.#saver = new ContentSaver(options.store, options.chunker, this.stats, options);
    this.#parents = new ParentTrees(options.store, options.parentTree);
    this.#walker = new TreeWalker(this.#saver, this.stats, (nodes) => this.saveTree(nodes), this.#parents, {
      onError: options.onError,
      forceRead: options.forceRead,
      exclude: options.exclude,
      ...(options.files ? { files: options.files } : {}),
      ...(options.folders ? { folders: options.folders } : {}),
    });
  }

  get timeNs(): bigint {
    return this.#timeNs;
  }

  #entries(source: string): Map<string, Promise<ResticNode | undefined>> {
    checkName(source, 'source');
    let entries = this.#sources.get(source);
    if (!entries) this.#sources.set(source, (entries = new Map()));
    return entries;
  }

  /** Starts `work` for the entry `/<source>/<name>` unless that entry is taken. */
  #add<T extends ResticNode | undefined>(source: string, name: string, work: () => Promise<T>): Promise<T> {
    const entries = this.#entries(source);
    if (entries.has(name)) throw new BackupError('E_USAGE', `source ${source}: ${JSON.stringify(name)} is added to the snapshot twice`);
    const started = work();
    // Awaited by the caller and by finish; the catch keeps a failure from also going unhandled.
    started.catch(() => {});
    entries.set(name, started);
    return started;
  }

  /**
   * Adds absolute paths (folders, files, symlinks) under `/<source>`. Paths inside another given
   * path are covered by it. Resolves when everything under them is saved.
   */
  async addTree(source: string, paths: string[]): Promise<void> {
    const entries = this.#entries(source);
    const absolute = [...new Set(paths.map((p) => path.resolve('/', p)))].sort();
    const roots = absolute.filter((p) => !absolute.some((q) => q !== p && (q === '/' || p.startsWith(`${q}/`))));
    if (roots.includes('/')) throw new BackupError('E_USAGE', `source ${source}: backing up / as a whole is not supported; name its folders`);
    const byTop = new Map<string, string[]>();
    for (const p of roots) {
      const top = p.split('/')[1]!;
      byTop.set(top, [...(byTop.get(top) ?? []), p]);
    }
    const taken = [...byTop.keys()].find((top) => entries.has(top));
    if (taken) throw new BackupError('E_USAGE', `source ${source}: ${JSON.stringify(taken)} is added to the snapshot twice`);
    const work = [...byTop].map(([top, targets]) =>
      this.#add(source, top, async () => this.#walker.saveSelection(`/${top}`, targets, await this.#parents.at([source, top]))),
    );
    // Wait for every path even when one fails: nothing may go on reading after this returns.
    const settled = await Promise.allSettled(work);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Adds a stream's bytes as the file `/<source>/<name>`; resolves once it is read and saved. */
  async addStream(source: string, name: string, stream: Readable, options: StreamOptions = {}): Promise<ResticNode> {
    checkName(name, `source ${source}: stream file`);
    const time = formatGoTime(this.#timeNs);
    return this.#add(source, name, async (): Promise<ResticNode> => {
      const { content, size } = await this.#saver.saveStream(stream);
      this.stats.filesNew++;
      this.stats.bytesTotal += size;
      return {
        name,
        type: 'file',
        mode: (options.mode ?? 0o600) & 0o777,
        mtime: time,
        atime: time,
        ctime: time,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        ...(size ? { size } : {}),
        content,
      };
    });
  }

  /** Saves a tree blob unless the repository holds it; returns its id. */
  async saveTree(nodes: ResticNode[]): Promise<string> {
    const data = encodeTree(nodes);
    const id = blobId(data);
    if (!this.#store.has('tree', id)) {
      this.stats.treeBlobs++;
      this.stats.bytesAdded += data.length;
      await this.#store.save('tree', id, data);
    }
    return id;
  }

  /** A folder that exists only in the snapshot (a source's top level): 0755, the snapshot's time. */
  #virtualDir(name: string, subtree: string): ResticNode {
    const time = formatGoTime(this.#timeNs);
    const user = os.userInfo();
    return {
      name,
      type: 'dir',
      mode: GoMode.dir + 0o755,
      mtime: time,
      atime: time,
      ctime: time,
      uid: user.uid,
      gid: user.gid,
      content: null,
      subtree,
    };
  }

  /**
   * Saves each source's folder and the root tree; returns the root tree's id. With `only`, the
   * snapshot holds just those sources (a partial snapshot leaves out the ones that failed, whose
   * entries may be incomplete; their blobs stay unreferenced until a prune).
   */
  async finish(only?: ReadonlySet<string>): Promise<string> {
    const top: ResticNode[] = [];
    for (const [source, entries] of this.#sources) {
      if (only && !only.has(source)) continue;
      const nodes = (await Promise.all(entries.values())).filter((n): n is ResticNode => n !== undefined);
      top.push(this.#virtualDir(source, await this.saveTree(nodes)));
    }
    return this.saveTree(top);
  }
}

import { isUtf8 } from 'node:buffer';
import type { BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { BackupError } from '../errors.js';
import type { ArchiveStats, ContentSaver } from './content-saver.js';
import { goQuote, parseGoTime } from './go-json.js';
import { nodeFromStat, type ResticNode } from './node.js';
import { nameKey, type ParentTrees } from './parent-trees.js';
import { Slots } from './slots.js';

export interface WalkOptions {
  /**
   * Told about an entry that cannot be read (gone, no permission); the entry is left out and
   * the run goes on, as restic does. Without it the first such error fails the run.
   */
  onError?: ((path: string, error: Error) => void) | undefined;
  /** Read every file even when the parent snapshot has it unchanged (restic's --force). */
  forceRead?: boolean | undefined;
  /** Leaves an entry below a selected path out (a folder: its whole subtree); the engine's tree filters. */
  exclude?: ((fsPath: Buffer, st: BigIntStats) => boolean) | undefined;
  /** Files read at once. Default 8. */
  files?: number;
  /** Folders walked at once besides the current path (listing, lstat, parent tree). Default 8. */
  folders?: number;
}

const SLASH = Buffer.from('/');
/** lstat calls in flight per folder: enough to hide their latency, few enough for huge folders. */
const STAT_BATCH = 32;

function join(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 && dir[0] === 0x2f ? Buffer.concat([SLASH, name]) : Buffer.concat([dir, SLASH, name]);
}

/** The node's name from its bytes: text when they are UTF-8, else the bytes and their Go escape. */
function named(node: ResticNode, name: Buffer): ResticNode {
  if (!isUtf8(name)) {
    node.name = goQuote(name);
    node.rawName = name;
  }
  return node;
}

/** restic's rule (archiver.fileChanged): a file is read again unless all of these match. */
export function fileChanged(st: BigIntStats, old: ResticNode | undefined): boolean {
  if (!old || old.type !== 'file') return true;
  if (BigInt(old.size ?? 0) !== st.size) return true;
  try {
    if (parseGoTime(old.mtime) !== st.mtimeNs || parseGoTime(old.ctime) !== st.ctimeNs) return true;
  } catch {
    return true;
  }
  return (old.inode ?? 0n) !== st.ino;
}

/**
 * Walks files, folders and symlinks (restic's other types recorded, sockets skipped as restic
 * does) and turns them into nodes, saving each folder's tree as soon as its entries are done.
 * Folders are walked depth first, a few side by side; files are read several at once.
 */
export class TreeWalker {
  readonly #saver: ContentSaver;
  readonly #stats: ArchiveStats;
  readonly #saveTree: (nodes: ResticNode[]) => Promise<string>;
  readonly #parents: ParentTrees;
  readonly #options: WalkOptions;
  readonly #files: Slots;
  readonly #folders: Slots;

  constructor(saver: ContentSaver, stats: ArchiveStats, saveTree: (nodes: ResticNode[]) => Promise<string>, parents: ParentTrees, options: WalkOptions) {
    this.#saver = saver;
    this.#stats = stats;
    this.#saveTree = saveTree;
    this.#parents = parents;
    this.#options = options;
    this.#files = new Slots(options.files ?? 8);
    this.#folders = new Slots(options.folders ?? 8);
  }

  #report(fsPath: Buffer | string, err: unknown): undefined {
    const error = err instanceof Error ? err : new Error(String(err));
    const where = fsPath.toString();
    if (!this.#options.onError) {
      if (error instanceof BackupError) throw error;
      throw new BackupError('E_SOURCE', `${where}: ${error.message}`, { cause: error });
    }
    this.#options.onError(where, error);
    return undefined;
  }

  /**
   * The node for `dirPath` when the snapshot holds only `targets` below it (all absolute, inside
   * it or equal to it): a folder on the way keeps its real metadata but lists only what leads to
   * a target, like restic's tree from `/` down.
   */
  async saveSelection(dirPath: string, targets: string[], old: ResticNode | undefined): Promise<ResticNode | undefined> {
    const name = Buffer.from(path.posix.basename(dirPath), 'utf8');
    let st: BigIntStats;
    try {
      st = await lstat(dirPath, { bigint: true });
    } catch (err) {
      return this.#report(dirPath, err);
    }
    if (targets.includes(dirPath)) return this.#saveEntry(Buffer.from(dirPath, 'utf8'), name, st, old);
    if (!st.isDirectory()) return this.#report(dirPath, new Error(`is not a folder, so ${targets.join(', ')} cannot be inside it`));
    const children = await this.#parents.children(old);
    const groups = new Map<string, string[]>();
    for (const target of targets) {
      const child = target.slice(dirPath.length + 1).split('/')[0]!;
      groups.set(child, [...(groups.get(child) ?? []), target]);
    }
    const nodes: ResticNode[] = [];
    for (const [child, subset] of groups) {
      const node = await this.saveSelection(path.posix.join(dirPath, child), subset, children.get(nameKey(Buffer.from(child, 'utf8'))));
      if (node) nodes.push(node);
    }
    const node = named(nodeFromStat(name.toString('utf8'), st), name);
    node.subtree = await this.#saveTree(nodes);
    this.#stats.dirs++;
    return node;
  }

  async #saveEntry(fsPath: Buffer, name: Buffer, st: BigIntStats, old: ResticNode | undefined): Promise<ResticNode | undefined> {
    if (st.isDirectory()) return this.#saveDir(fsPath, name, st, old);
    if (st.isFile()) return this.#saveFile(fsPath, name, st, old);
    if (st.isSocket()) return undefined;
    let link: { text: string; raw?: Buffer } | undefined;
    if (st.isSymbolicLink()) {
      try {
        const raw = await readlink(fsPath, { encoding: 'buffer' });
        link = isUtf8(raw) ? { text: raw.toString('utf8') } : { text: raw.toString('utf8'), raw };
      } catch (err) {
        return this.#report(fsPath, err);
      }
    }
    return named(nodeFromStat(name.toString('utf8'), st, link), name);
  }

  async #saveFile(fsPath: Buffer, name: Buffer, st: BigIntStats, old: ResticNode | undefined): Promise<ResticNode | undefined> {
    const stats = this.#stats;
    if (!this.#options.forceRead && !fileChanged(st, old) && this.#saver.holdsAll(old!.content ?? [])) {
      const node = named(nodeFromStat(name.toString('utf8'), st), name);
      node.content = old!.content;
      stats.filesUnmodified++;
      stats.bytesTotal += Number(st.size);
      return node;
    }
    let saved;
    try {
      saved = await this.#saver.saveFile(fsPath);
    } catch (err) {
      return this.#report(fsPath, err);
    }
    const node = named(nodeFromStat(name.toString('utf8'), saved.stat), name);
    node.content = saved.content;
    node.size = saved.size;
    if (old) stats.filesChanged++;
    else stats.filesNew++;
    stats.bytesTotal += saved.size;
    return node;
  }

  async #saveDir(fsPath: Buffer, name: Buffer, st: BigIntStats, old: ResticNode | undefined): Promise<ResticNode | undefined> {
    let names: Buffer[];
    try {
      names = (await readdir(fsPath, { encoding: 'buffer' })).sort(Buffer.compare);
    } catch (err) {
      return this.#report(fsPath, err);
    }
    const previous = await this.#parents.children(old);
    const entries: Promise<ResticNode | undefined>[] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = names.slice(i, i + STAT_BATCH);
      const stats = await Promise.all(batch.map((n) => lstat(join(fsPath, n), { bigint: true }).catch((err: unknown) => err as Error)));
      for (const [k, childName] of batch.entries()) {
        const childPath = join(fsPath, childName);
        const childStat = stats[k]!;
        if (childStat instanceof Error) {
          // Gone since the listing: as if it had never been there.
          if ((childStat as NodeJS.ErrnoException).code !== 'ENOENT') entries.push(Promise.resolve(this.#report(childPath, childStat)));
          continue;
        }
        if (this.#options.exclude?.(childPath, childStat)) continue;
        const before = previous.get(nameKey(childName));
        if (childStat.isDirectory()) {
          // A free folder slot walks the subfolder beside this one; without one it is walked
          // here and now, so the number of folders in memory stays bounded and nothing waits
          // on a slot held by a folder that waits on it.
          if (this.#folders.tryAcquire()) {
            const walking = this.#saveDir(childPath, childName, childStat, before).finally(() => this.#folders.release());
            walking.catch(() => {});
            entries.push(walking);
          } else {
            entries.push(Promise.resolve(await this.#saveDir(childPath, childName, childStat, before)));
          }
        } else if (childStat.isFile()) {
          await this.#files.acquire();
          const saving = this.#saveFile(childPath, childName, childStat, before).finally(() => this.#files.release());
          saving.catch(() => {});
          entries.push(saving);
        } else {
          entries.push(this.#saveEntry(childPath, childName, childStat, before));
        }
      }
    }
    const nodes = (await Promise.all(entries)).filter((n): n is ResticNode => n !== undefined);
    const node = named(nodeFromStat(name.toString('utf8'), st), name);
    node.subtree = await this.#saveTree(nodes);
    this.#stats.dirs++;
    return node;
  }
}

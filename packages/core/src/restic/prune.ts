import { BackupError } from '../errors.js';
import { BlobIndex, PackList } from './blob-index.js';
import { SEAL_OVERHEAD } from './crypto.js';
import { indexFiles, MAX_BLOBS_PER_INDEX, type IndexPackJson, type StoredPack } from './index-file.js';
import type { LockOptions, RepositoryLock } from './locks.js';
import { headerEntrySize } from './pack.js';
import { packKey } from './pack-writer.js';
import { planPrune, type PackUsage, type PruneStats } from './prune-plan.js';
import type { ResticRepository } from './repository.js';
import { checkSnapshot } from './snapshot.js';
import type { BlobType } from './store.js';
import { markUsedBlobs } from './used-blobs.js';

/**
 * Forgetting snapshots and collecting the garbage they leave, under restic's exclusive lock and in
 * restic's order (cmd_prune.go), so that a crash at any moment leaves a repository `restic check`
 * passes and the next run completes:
 *
 *   1. lock exclusively, remove the forgotten snapshot files, load the index afresh;
 *   2. mark what the remaining snapshots use (walking their trees), and plan (prune-plan.ts);
 *   3. delete packs no index names (left by interrupted runs: nothing refers to them);
 *   4. repack the used blobs of the packs chosen for it into new packs (not yet indexed: a crash
 *      leaves them unreferenced, for the next prune to delete);
 *   5. write the new index (kept packs and new ones); its last file names every old index file
 *      as superseded, so it takes effect only once it is complete;
 *   6. delete the old index files, then the packs removed or repacked.
 *
 * Before each deletion the lock is checked: a lock lost to another process stops the prune.
 */

export interface PruneOptions {
  /** Snapshots to forget: their files are removed first (retention is decided elsewhere). */
  forget?: readonly string[];
  /** Unused share tolerated after the prune, in percent (restic's --max-unused, default 5). */
  maxUnusedPercent?: number;
  /** Plan only: nothing is removed or written (not even the forgotten snapshots). */
  dryRun?: boolean;
  lock?: Omit<LockOptions, 'exclusive' | 'where'>;
  /** Told as each step begins (logs; tests kill the process at them). */
  onStep?: (step: PruneStep) => void;
}

export type PruneStep = 'plan' | 'delete-unreferenced' | 'repack' | 'write-index' | 'delete-index' | 'delete-packs' | 'done';

export interface PruneResult {
  snapshotsRemoved: number;
  snapshotsKept: number;
  /** Packs deleted: unused, repacked and unreferenced ones. */
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  blobsRepacked: number;
  indexFilesWritten: number;
  indexFilesDeleted: number;
  stats: PruneStats;
}

const DELETES = 8;

export async function prune(repo: ResticRepository, options: PruneOptions = {}): Promise<PruneResult> {
  const lock = await repo.lock(true, options.lock);
  try {
    return await new Pruner(repo, lock, options).run();
  } finally {
    await lock.release();
  }
}

class Pruner {
  readonly #repo: ResticRepository;
  readonly #lock: RepositoryLock;
  readonly #o: PruneOptions;

  constructor(repo: ResticRepository, lock: RepositoryLock, options: PruneOptions) {
    this.#repo = repo;
    this.#lock = lock;
    this.#o = options;
  }

  async run(): Promise<PruneResult> {
    const repo = this.#repo;
    const step = (s: PruneStep) => this.#o.onStep?.(s);
    const snapshots = await repo.list('snapshots');
    const forget = new Set(this.#o.forget ?? []);
    const unknown = [...forget].filter((id) => !snapshots.includes(id));
    if (unknown.length) throw new BackupError('E_NOT_FOUND', `${repo.destination.description}: no snapshot ${unknown.join(', ')}; nothing was removed`);
    const kept = snapshots.filter((id) => !forget.has(id));
    if (!this.#o.dryRun) for (const id of forget) await this.#delete(() => repo.remove('snapshots', id));
    step('plan');
    const loaded = await repo.reloadIndex();
    const indexIds = loaded.ids.filter((id) => !loaded.superseded.includes(id));
    const roots = await Promise.all(kept.map(async (id) => checkSnapshot(await repo.loadJson('snapshots', id), id).tree));
    const { index, packs } = repo.indexState;
    const used = await markUsedBlobs(repo, index, roots);
    const usage = await this.#usage(indexIds, used);
    const stored = await this.#storedPacks();
    const plan = planPrune(usage, stored, { maxUnusedPercent: this.#o.maxUnusedPercent ?? 5, packSize: repo.packSize, version: repo.config.version });
    const result: PruneResult = {
      snapshotsRemoved: forget.size,
      snapshotsKept: kept.length,
      packsDeleted: plan.unreferenced.length + plan.remove.size + plan.repack.size,
      packsRepacked: plan.repack.size,
      packsWritten: 0,
      blobsRepacked: 0,
      indexFilesWritten: 0,
      indexFilesDeleted: 0,
      stats: plan.stats,
    };
    if (this.#o.dryRun) return result;

    step('delete-unreferenced');
    await this.#deleteAll(plan.unreferenced.map((id) => () => repo.destination.delete(packKey(id))));
    const changed = plan.remove.size + plan.repack.size + plan.ignore.size > 0;
    if (changed) {
      step('repack');
      const written = await this.#repack(plan.repack, used, index, packs);
      result.packsWritten = written.packs.length;
      result.blobsRepacked = written.blobs;
      step('write-index');
      const drop = new Set([...plan.remove, ...plan.repack, ...plan.ignore]);
      const newIndex = await this.#writeIndex(indexIds, drop, written.packs, loaded.ids);
      result.indexFilesWritten = newIndex.length;
      step('delete-index');
      await this.#deleteAll(loaded.ids.map((id) => () => repo.remove('index', id)));
      result.indexFilesDeleted = loaded.ids.length;
      step('delete-packs');
      await this.#deleteAll([...plan.remove, ...plan.repack].filter((id) => stored.has(id)).map((id) => () => repo.destination.delete(packKey(id))));
    }
    step('done');
    return result;
  }

  /** Per pack, what is used: a blob counts once, in the pack the in-memory index chose for it. */
  async #usage(indexIds: string[], used: Uint8Array): Promise<Map<string, PackUsage>> {
    const { index, packs } = this.#repo.indexState;
    const usage = new Map<string, PackUsage>();
    for (const file of indexIds) {
      for (const pack of (await this.#repo.loadIndexFile(file)).packs) {
        if (usage.has(pack.id)) continue;
        const n = packs.numberOf(pack.id);
        const u: PackUsage = { type: pack.blobs[0]?.type ?? 'data', usedBlobs: 0, unusedBlobs: 0, usedSize: SEAL_OVERHEAD + 4, unusedSize: 0, uncompressed: false };
        for (const b of pack.blobs) {
          const ulen = b.uncompressed_length ?? 0;
          u.usedSize += headerEntrySize({ uncompressedLength: ulen });
          if (b.type !== u.type) u.type = 'mixed';
          if (!ulen) u.uncompressed = true;
          const e = index.lookup(b.type, b.id);
          const where = e >= 0 ? index.location(e) : undefined;
          if (where && used[e] && where.pack === n && where.offset === b.offset) {
            u.usedBlobs++;
            u.usedSize += b.length;
          } else {
            u.unusedBlobs++;
            u.unusedSize += b.length;
          }
        }
        usage.set(pack.id, u);
      }
    }
    return usage;
  }

  async #storedPacks(): Promise<Map<string, number>> {
    const stored = new Map<string, number>();
    for (const o of await this.#repo.destination.list('data/')) {
      const m = /^data\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(o.key);
      if (m && (m[2] as string).startsWith(m[1] as string)) stored.set(m[2] as string, o.size);
    }
    return stored;
  }

  /** Copies the used blobs of `repack` into new packs (a writer with an index of its own). */
  async #repack(repack: Set<string>, used: Uint8Array, index: BlobIndex, packs: PackList): Promise<{ packs: StoredPack[]; blobs: number }> {
    const keep: Record<BlobType, string[]> = { tree: [], data: [] };
    let e = 0;
    index.forEach((type, id, where) => {
      const pack = packs.id(where.pack);
      if (used[e++] && pack !== undefined && repack.has(pack)) keep[type].push(Buffer.from(id).toString('hex'));
    });
    const writer = this.#repo.newPackWriter(new BlobIndex(), new PackList());
    for (const type of ['tree', 'data'] as const) {
      await this.#repo.loadMany(type, keep[type], (id, plaintext) => writer.add(type, Buffer.from(id, 'hex'), plaintext));
    }
    return { packs: await writer.flush(), blobs: keep.tree.length + keep.data.length };
  }

  /**
   * The new index: the kept packs of the old files and the new packs, in files of at most
   * MAX_BLOBS_PER_INDEX blobs, written as they fill (a file's worth in memory). The last one
   * names the old files as superseded: a reader that honours it sees the new index only whole.
   */
  async #writeIndex(indexIds: string[], drop: Set<string>, added: StoredPack[], old: string[]): Promise<string[]> {
    const written: string[] = [];
    const seen = new Set<string>();
    let current: IndexPackJson[] = [];
    let blobs = 0;
    const emit = async (pack: IndexPackJson) => {
      if (blobs > 0 && blobs + pack.blobs.length > MAX_BLOBS_PER_INDEX) {
        written.push(await this.#repo.saveJson('index', { packs: current }));
        current = [];
        blobs = 0;
      }
      current.push(pack);
      blobs += pack.blobs.length;
    };
    for (const file of indexIds) {
      for (const pack of (await this.#repo.loadIndexFile(file)).packs) {
        if (drop.has(pack.id) || seen.has(pack.id)) continue;
        seen.add(pack.id);
        await emit(pack);
      }
    }
    for (const file of indexFiles(added)) for (const pack of file.packs) await emit(pack);
    written.push(await this.#repo.saveJson('index', { supersedes: old, packs: current }));
    return written;
  }

  /** Runs deletions a few at a time, once the lock is known to be ours. */
  async #deleteAll(deletions: (() => Promise<void>)[]): Promise<void> {
    for (let i = 0; i < deletions.length; i += DELETES) {
      this.#lock.assertHeld();
      await Promise.all(deletions.slice(i, i + DELETES).map((d) => d()));
    }
  }

  async #delete(deletion: () => Promise<void>): Promise<void> {
    await this.#deleteAll([deletion]);
  }
}

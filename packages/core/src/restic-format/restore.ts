import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { EngineContext } from '../context.js';
import { BackupError } from '../errors.js';
import { isSourceName } from '../manifest.js';
import { restoreSnapshot } from '../restic/restorer.js';
import type { RestoreOptions, RestoreResult } from '../restore-command.js';
import { makeRestoreWork, removeStaleRestoreWork } from '../restore-work.js';
import type { RestoredArtifact } from '../restore.js';
import type { ResticSnapshots } from './snapshots.js';

async function isFreeTarget(dir: string): Promise<boolean> {
  const st = await fsp.lstat(dir).catch(() => undefined);
  if (!st) return true;
  return st.isDirectory() && !st.isSymbolicLink() && (await fsp.readdir(dir)).length === 0;
}

/**
 * `restore --to DIR` from a restic snapshot: each source through restic/restorer.ts (its checks
 * of every tree before anything is written) into a private folder inside DIR, then moved to
 * `DIR/<source>` once every source restored, so a failure leaves DIR as it was.
 */
export async function restoreResticTo(ctx: EngineContext, repo: ResticSnapshots, options: RestoreOptions): Promise<RestoreResult> {
  const id = await repo.resolveId(options.snapshot);
  const manifest = await repo.readManifest(id);
  const all = [...new Set(manifest.artifacts.map((a) => a.source))];
  for (const s of options.sources ?? []) if (!all.includes(s)) throw new BackupError('E_USAGE', `snapshot ${id} has no source ${s} (its sources: ${all.join(', ')})`);
  const sources = options.sources?.length ? all.filter((s) => options.sources!.includes(s)) : all;
  const target = path.resolve(options.to!);
  for (const source of sources) {
    if (!isSourceName(source)) throw new BackupError('E_RESTORE', `refused source name ${JSON.stringify(source)}: not a plain name`);
    if (!(await isFreeTarget(path.join(target, source)))) {
      throw new BackupError('E_RESTORE', `${path.join(target, source)} exists and is not an empty folder: restore into another folder (--force is not supported with format restic yet); nothing was restored`);
    }
  }
  const { repo: store, tree } = await repo.rootTree(id);
  await fsp.mkdir(target, { recursive: true, mode: 0o700 });
  await removeStaleRestoreWork(target, ctx.logger);
  const work = await makeRestoreWork(target);
  try {
    const staged = new Map<string, string>();
    for (const source of sources) {
      const at = path.join(work, `tree-${source}`);
      await restoreSnapshot({
        store,
        rootTree: tree,
        include: `/${source}`,
        target: at,
        label: `${repo.name}: ${id}`,
        ...(options.preserveOwner ? { preserveOwner: true } : {}),
        onWarning: (message) => ctx.logger.warn(message),
      });
      staged.set(source, path.join(at, source));
    }
    const restored: RestoredArtifact[] = [];
    for (const [source, from] of staged) {
      const to = path.join(target, source);
      await fsp.rmdir(to).catch(() => {});
      await fsp.rename(from, to);
      for (const a of manifest.artifacts.filter((x) => x.source === source)) {
        restored.push({ source, file: a.file, path: a.type === 'tree' ? to : path.join(to, a.filename ?? a.file) });
        ctx.logger.info(`restored ${a.file} to ${restored.at(-1)!.path}`);
      }
    }
    return { snapshot: id, repository: repo.name, restored };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

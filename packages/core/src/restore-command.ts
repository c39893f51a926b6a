import type { EngineContext } from './context.js';
import { BackupError } from './errors.js';
import { restoreIntoContext } from './plugin-contexts.js';
import type { ReadableArtifact } from './repository-format.js';
import { restoreToDir, type RestoredArtifact } from './restore.js';
import { Scratch } from './scratch.js';
import { openSnapshot } from './snapshot-readers.js';
import { restoreResticTo } from './restic-format/restore.js';
import { ResticSnapshots } from './restic-format/snapshots.js';

export interface RestoreOptions {
  snapshot: string;
  /** Restore under this folder (`DIR/<source>/`). */
  to?: string;
  /** Restore a database source into this server (`--into URL`). */
  into?: string;
  sources?: string[];
  /** With `to`: only these paths of tree sources (file artifacts: by name), as `ls` shows them. */
  paths?: string[];
  database?: string;
  clean?: boolean;
  force?: boolean;
  preserveOwner?: boolean;
  from?: string;
}

export interface RestoreResult {
  snapshot: string;
  repository: string;
  restored: RestoredArtifact[] | { source: string; file: string; into: string }[];
}

/** `restore --to DIR` (every format, restore.ts) or `restore --into URL` (the source plugin's restore hook). */
export async function restoreSnapshot(ctx: EngineContext, options: RestoreOptions): Promise<RestoreResult> {
  if (Boolean(options.to) === Boolean(options.into)) throw new BackupError('E_USAGE', 'restore needs exactly one of --to DIR or --into URL');
  if (options.into && options.paths?.length) throw new BackupError('E_USAGE', 'restore --path works with --to DIR only');
  const repo = ctx.repositories.at(options.from);
  if (repo instanceof ResticSnapshots && options.to) return restoreResticTo(ctx, repo, options);
  const scratch = new Scratch(ctx.config.backupRoot);
  try {
    const { id, readers } = await openSnapshot(ctx, repo, options.snapshot, options.sources, scratch, 'restore');
    if (options.to) {
      const restored = await restoreToDir(readers, options.to, {
        ...(options.force ? { force: true } : {}),
        ...(options.preserveOwner ? { preserveOwner: true } : {}),
        ...(options.paths?.length ? { paths: options.paths } : {}),
      });
      for (const r of restored) ctx.logger.info(`restored ${r.file} to ${r.path}`);
      return { snapshot: id, repository: repo.name, restored };
    }
    if (!options.sources?.length) throw new BackupError('E_USAGE', 'restore --into needs --source S (the database source to restore)');
    return { snapshot: id, repository: repo.name, restored: await restoreInto(ctx, readers, options.into!, options) };
  } finally {
    await scratch.dispose();
  }
}

async function restoreInto(ctx: EngineContext, readers: ReadableArtifact[], into: string, options: RestoreOptions): Promise<{ source: string; file: string; into: string }[]> {
  const restored: { source: string; file: string; into: string }[] = [];
  // The URL usually carries a password: it must not come back out in logs or the result.
  ctx.secrets.addFromUrl(into);
  for (const reader of readers) {
    const handled = await ctx.hooks.restore.promise(restoreIntoContext(reader, { into, database: options.database, clean: Boolean(options.clean) }));
    if (handled === undefined) {
      throw new BackupError('E_USAGE', `source ${reader.artifact.source} (${reader.artifact.plugin}) cannot be restored --into a server; use --to DIR`);
    }
    if (!handled) continue;
    restored.push({ source: reader.artifact.source, file: reader.artifact.file, into: ctx.secrets.redact(into) });
  }
  return restored;
}

/**
 * The run pipeline: collect → archive → verify → commit → replicate → prune → restoreTest, then
 * finish (notify, history). Each stage is a module of this folder; they share one BackupRun.
 */
import { profileNamed, type EngineContext } from '../context.js';
import { BackupError, isBackupError } from '../errors.js';
import { RunLock } from '../lock.js';
import type { RunReport } from '../report.js';
import { Scratch } from '../scratch.js';
import { archive } from './archive.js';
import { BackupRun, type RunOptions } from './backup-run.js';
import { cleanStaging } from './clean-staging.js';
import { collect } from './collect.js';
import { commit, newManifest } from './commit.js';
import { finish } from './finish.js';
import { prune } from './prune.js';
import { replicate } from './replicate.js';
import { restoreTest } from './restore-test.js';
import { verifyWritten } from './verify.js';

export async function runBackup(ctx: EngineContext, options: RunOptions = {}): Promise<RunReport> {
  const profile = profileNamed(ctx.config, options.profile);
  BackupRun.checkOnly(profile, options.only);
  const backup = new BackupRun(ctx, profile, options);
  const { report, run, logger } = backup;
  const lock = new RunLock(ctx.stateDir);
  if (!options.dryRun) {
    await lock.acquire(`run --profile ${profile.name}`);
  }
  const scratch = new Scratch(ctx.config.backupRoot);
  logger.info(`run started: profile ${profile.name}, sources ${run.sources.join(', ')}`);
  try {
    if (!options.dryRun) await cleanStaging(backup);
    await ctx.hooks.beforeRun.promise(run);
    await collect(backup);
    if (options.dryRun) {
      for (const p of backup.pending) logger.info(`would archive ${p.spec.name} (${p.spec.type})`, { plugin: `sources.${p.source}` });
      return report;
    }
    const writer = (backup.writer = await ctx.repositories.local.startSnapshot(backup.id, {
      compression: ctx.config.compression,
      compressionLevel: ctx.config.compressionLevel,
    }));
    await archive(backup, writer);
    const manifest = newManifest(backup);
    await verifyWritten(backup, writer, manifest, scratch);
    await commit(backup, writer, manifest);
    await replicate(backup, manifest);
    await prune(backup);
    await restoreTest(backup);
    return report;
  } catch (err) {
    backup.recordFailure(undefined, err);
    const error = isBackupError(err) ? err : new BackupError('E_INTERNAL', (err as Error).message, { cause: err });
    await ctx.hooks.runFailed.promise(run, error).catch((e) => logger.warn(`runFailed hook failed: ${(e as Error).message}`));
    return report;
  } finally {
    backup.detach();
    ctx.progress.clear();
    await backup.writer?.close();
    await scratch.dispose();
    await finish(backup);
    await lock.release().catch(() => {});
  }
}

import type { EngineContext } from './context.js';
import type { Logger } from './log.js';
import { RunLock } from './lock.js';
import { forgetSnapshot, policyFor, pruneRecord, pruneRepository, type ForgetResult, type PruneResult } from './pruner.js';
import type { SnapshotRepository } from './repository-format.js';
import type { RetentionPolicy } from './retention.js';
import { suspectSnapshots } from './suspects.js';

/** `prune`: retention at backupRoot and every destination (or the one named), under the run lock. */
export async function prune(ctx: EngineContext, options: { dryRun?: boolean; from?: string } = {}): Promise<PruneResult[]> {
  const lock = new RunLock(ctx.stateDir);
  if (!options.dryRun) {
    await lock.acquire('prune');
  }
  try {
    const targets = options.from
      ? [{ repo: ctx.repositories.at(options.from), retention: ctx.repositories.destinations.get(options.from)?.retention }]
      : ctx.repositories.pruneTargets();
    const results: PruneResult[] = [];
    for (const t of targets) results.push(await pruneOne(ctx, t.repo, t.retention, Boolean(options.dryRun), ctx.logger));
    await ctx.hooks.prune.promise({ run: undefined, dryRun: Boolean(options.dryRun), logger: ctx.logger });
    return results;
  } finally {
    await lock.release().catch(() => {});
  }
}

/** Prunes one repository by `override` (a destination's retention) or each snapshot's profile's; recorded unless a dry run. */
export async function pruneOne(ctx: EngineContext, repo: SnapshotRepository, override: RetentionPolicy | undefined, dryRun: boolean, logger: Logger): Promise<PruneResult> {
  const startedAt = ctx.now();
  const result = await pruneRepository(repo, {
    policy: policyFor(ctx.config.profiles, override),
    override,
    suspects: suspectSnapshots(await ctx.history.read()),
    now: startedAt,
    dryRun,
    logger,
  });
  // Deleting snapshots frees nothing in a deduplicating format until its garbage is collected.
  if (!dryRun && result.removed.length) await repo.collectGarbage?.(logger);
  if (!dryRun) await ctx.history.append(pruneRecord(result, startedAt, ctx.now())).catch(() => {});
  return result;
}

/** `forget`: deletes one snapshot from one repository (backupRoot unless `from`), under the run lock. */
export async function forget(ctx: EngineContext, options: { snapshot: string; from?: string }): Promise<ForgetResult> {
  const repo = ctx.repositories.at(options.from);
  const lock = new RunLock(ctx.stateDir);
  await lock.acquire(`forget ${options.snapshot}`);
  try {
    const startedAt = ctx.now();
    const result = await forgetSnapshot(repo, options.snapshot, { suspects: suspectSnapshots(await ctx.history.read()), now: startedAt, logger: ctx.logger });
    await ctx.history
      .append({ kind: 'forget', status: 'success', startedAt: startedAt.toISOString(), finishedAt: ctx.now().toISOString(), repository: repo.name, removed: [result.id] })
      .catch(() => {});
    return result;
  } finally {
    await lock.release().catch(() => {});
  }
}

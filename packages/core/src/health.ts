import type { CheckResult } from './checks.js';
import { BACKUP_ROOT, type EngineContext } from './context.js';
import type { Destination } from './destination.js';
import { freshnessChecks } from './freshness.js';
import { offsiteLagCheck, restoreTestCheck, strategy, threeTwoOneCheck, type Strategy } from './health-conditions.js';
import { notifyHealth } from './health-notify.js';
import type { HistoryRecord } from './history.js';
import { authenticationCheck } from './integrity.js';
import type { HealthChange, NotificationResult } from './notify.js';
import { latestPartial, partialRunNote, type PartialSnapshot } from './partial-status.js';
import { foreignFolders } from './pruner.js';
import { suspectSnapshots, verificationCheck, type SuspectSnapshot } from './suspects.js';

export { HEALTH_CONDITIONS } from './health-notify.js';

export interface StatusResult {
  healthy: boolean;
  checks: CheckResult[];
  strategy: Strategy;
  lastRun: HistoryRecord | null;
  snapshots: number;
  latest: string | null;
  /** The newest snapshot when it is partial (some sources failed), else null. */
  partial: PartialSnapshot | null;
  /** Snapshots whose latest verification failed, at each repository: kept, and deleted only by `forget`. */
  suspects: SuspectSnapshot[];
  /** Folders named like snapshots without manifest or marker (backupRoot now, destinations as of their last prune): left alone. */
  foreign: { repository: string; id: string }[];
  /** With `notify`: the health conditions that began or cleared, and what each channel did. */
  changes?: HealthChange[];
  notifications?: NotificationResult[];
}

/**
 * Health: freshness per profile, the last run, storage use, verification, replication, restore
 * tests, 3-2-1 and the offsite copy's lag. A condition of severity `warning` passes with
 * `warning: true`; a `critical` one fails (exit 1). With `notify`, each condition that began or
 * cleared since the last such check is sent to the channels (once), and every condition gets one
 * log line.
 */
export async function status(ctx: EngineContext, options: { notify?: boolean } = {}): Promise<StatusResult> {
  const { repositories } = ctx;
  const now = ctx.now();
  const records = await ctx.history.read();
  const lastRun = [...records].reverse().find((r) => r.kind === 'run') ?? null;
  const listing = await repositories.local.listing().catch(() => undefined);
  const ids = listing?.ids ?? [];
  const latest = ids.at(-1) ?? null;
  // backupRoot's suspects and foreign folders as they are now; destinations' from the history.
  const suspects = suspectSnapshots(records).filter((s) => (s.repository === BACKUP_ROOT ? ids.includes(s.id) : repositories.hasDestination(s.repository)));
  const foreign = foreignFolders(records, listing, (repository) => repositories.hasDestination(repository));
  const copies = strategy(ctx, records, latest);
  const checks: CheckResult[] = [
    ...freshnessChecks(ctx.config, ids, records, now),
    lastRunCheck(lastRun),
    await storageCheck(ctx),
    verificationCheck(records, suspects),
    replicationCheck(ctx, records),
    restoreTestCheck(ctx, records, now),
    threeTwoOneCheck(ctx, copies),
    offsiteLagCheck(ctx, records, latest, now),
    authenticationCheck(ctx.config),
  ].filter((c): c is CheckResult => c !== undefined);
  const result: StatusResult = {
    healthy: checks.every((c) => c.ok),
    checks,
    strategy: copies,
    lastRun,
    snapshots: ids.length,
    latest,
    partial: await latestPartial(repositories.local, latest),
    suspects,
    foreign,
  };
  if (options.notify) Object.assign(result, await notifyHealth(ctx, checks, now));
  return result;
}

function lastRunCheck(lastRun: HistoryRecord | null): CheckResult {
  return {
    name: 'last-run',
    ok: lastRun?.status === 'success',
    detail: lastRun ? `${lastRun.status} at ${lastRun.finishedAt}${lastRun.snapshot ? ` (${lastRun.snapshot})` : ''}${partialRunNote(lastRun)}` : 'never ran',
  };
}

async function storageCheck(ctx: EngineContext): Promise<CheckResult> {
  const max = ctx.config.checks.maxStorageUsage;
  const places: [string, Destination][] = [
    [BACKUP_ROOT, ctx.repositories.local.destination],
    ...[...ctx.repositories.destinations.values()].map((d) => [d.name, d.destination] as [string, Destination]),
  ];
  const used: { where: string; fraction: number }[] = [];
  for (const [where, destination] of places) {
    const usage = await withTimeout(destination.usage?.(), 15_000).catch(() => undefined);
    if (usage && usage.totalBytes > 0) used.push({ where, fraction: usage.usedBytes / usage.totalBytes });
  }
  if (!used.length) return { name: 'storage', ok: true, detail: 'usage unknown' };
  const over = used.filter((u) => u.fraction > max);
  const pct = (f: number) => `${(f * 100).toFixed(1)}%`;
  return {
    name: 'storage',
    ok: over.length === 0,
    detail: `${(over.length ? over : used).map((u) => `${pct(u.fraction)} used at ${u.where}`).join(', ')} (max ${(max * 100).toFixed(0)}%)`,
  };
}

function replicationCheck(ctx: EngineContext, records: HistoryRecord[]): CheckResult {
  const destinations = ctx.repositories.destinations;
  if (!destinations.size) return { name: 'replication', ok: true, detail: 'no destinations configured' };
  const last = new Map<string, { status: 'ok' | 'failed'; error?: string; at: string }>();
  for (const r of records) {
    if (r.kind !== 'run' && r.kind !== 'replicate') continue;
    for (const d of r.destinations ?? []) last.set(d.name, { status: d.status, ...(d.error ? { error: d.error } : {}), at: r.finishedAt });
  }
  const parts: string[] = [];
  let ok = true;
  for (const name of destinations.keys()) {
    const l = last.get(name);
    if (!l) parts.push(`${name}: not replicated yet`);
    else if (l.status === 'failed') {
      ok = false;
      parts.push(`${name}: failed at ${l.at}${l.error ? `: ${l.error}` : ''}`);
    } else parts.push(`${name}: ok at ${l.at}`);
  }
  return { name: 'replication', ok, detail: parts.join('; ') };
}

function withTimeout<T>(promise: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (!promise) return Promise.resolve(undefined);
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
      timer.unref();
    }),
  ]);
}

import type { CheckResult } from './checks.js';
import { BACKUP_ROOT, type EngineContext } from './context.js';
import type { Destination, DestinationTraits } from './destination.js';
import type { HistoryRecord } from './history.js';
import { authenticationCheck } from './integrity.js';
import { notify } from './notifier.js';
import { formatAge, healthNotification, type ConditionState, type HealthChange, type NotificationResult, type NotifyEvent } from './notify.js';
import { latestPartial, partialRunNote, type PartialSnapshot } from './partial-status.js';
import { foreignFolders } from './pruner.js';
import { parseSnapshotId } from './snapshot-id.js';
import { suspectSnapshots, verificationCheck, type SuspectSnapshot } from './suspects.js';

export interface StatusResult {
  healthy: boolean;
  checks: CheckResult[];
  strategy: { copies: number; media: number; offsite: boolean; compliant: boolean };
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

/** The checks of `status` that `status --notify` alerts on when they begin and when they clear. */
export const HEALTH_CONDITIONS = ['freshness', 'storage', 'verification', 'replication', 'restore-test'] as const;
/** A condition that is a warning rather than a failure (a channel's `on:` tells them apart). */
const warningConditions: ReadonlySet<string> = new Set(['storage']);

/**
 * Health: freshness, the last run, storage use, verification, replication, restore tests, and
 * 3-2-1. With `notify`, each condition that began or cleared since the last such check is
 * sent to the channels (once), and every condition gets one log line.
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
  const checks: CheckResult[] = [
    freshnessCheck(ctx, latest, now),
    lastRunCheck(lastRun),
    await storageCheck(ctx),
    verificationCheck(records, suspects),
    replicationCheck(ctx, records),
    restoreTestCheck(ctx, records, now),
    authenticationCheck(ctx.config),
  ];
  const result: StatusResult = {
    healthy: checks.every((c) => c.ok),
    checks,
    strategy: strategy(ctx, records, latest),
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

/** 3-2-1: copies (backupRoot, and each destination whose last replication succeeded), media, offsite. */
function strategy(ctx: EngineContext, records: HistoryRecord[], latest: string | null): StatusResult['strategy'] {
  const traits: DestinationTraits[] = [{ medium: 'local-disk', offsite: false }];
  const lastReplication = new Map<string, 'ok' | 'failed'>();
  for (const r of records) if (r.kind === 'run') for (const d of r.destinations ?? []) lastReplication.set(d.name, d.status);
  for (const d of ctx.repositories.destinations.values()) if (lastReplication.get(d.name) === 'ok') traits.push(d.traits);
  const copies = latest ? traits.length : 0;
  const media = new Set(traits.map((t) => t.medium)).size;
  const offsite = traits.some((t) => t.offsite);
  return { copies, media, offsite, compliant: copies >= 3 && media >= 2 && offsite };
}

function freshnessCheck(ctx: EngineContext, latest: string | null, now: Date): CheckResult {
  const latestTime = latest ? parseSnapshotId(latest)!.time : undefined;
  const age = latestTime ? now.getTime() - latestTime.getTime() : Infinity;
  const maxAge = ctx.config.checks.maxAgeMs;
  return {
    name: 'freshness',
    ok: age <= maxAge,
    detail: latest ? `latest snapshot ${latest} is ${formatAge(Math.max(0, age))} old (max ${formatAge(maxAge)})` : 'no snapshot yet',
  };
}

function lastRunCheck(lastRun: HistoryRecord | null): CheckResult {
  return {
    name: 'last-run',
    ok: lastRun?.status === 'success',
    detail: lastRun ? `${lastRun.status} at ${lastRun.finishedAt}${lastRun.snapshot ? ` (${lastRun.snapshot})` : ''}${partialRunNote(lastRun)}` : 'never ran',
  };
}

/** Compares each health condition with the last check's, logs one line each, and alerts on changes. */
async function notifyHealth(ctx: EngineContext, checks: CheckResult[], now: Date): Promise<{ changes: HealthChange[]; notifications: NotificationResult[] }> {
  const state = await ctx.notifications.read();
  const at = now.toISOString();
  const changes: HealthChange[] = [];
  const conditions = checks.filter((c) => (HEALTH_CONDITIONS as readonly string[]).includes(c.name));
  const next: Record<string, ConditionState> = {};
  const resends: NonNullable<ConditionState['undelivered']>[] = [];
  for (const c of conditions) {
    const prev = state.conditions[c.name];
    const detail = c.detail ?? '';
    const transition = !c.ok && (!prev || prev.ok) ? 'begin' : c.ok && prev && !prev.ok ? 'clear' : undefined;
    const since = prev && prev.ok === c.ok ? prev.since : at;
    next[c.name] = { ok: c.ok, since, detail };
    // A begin or clear a channel could not take (its server was down) is sent again, to it alone.
    if (!transition && prev?.undelivered) resends.push(prev.undelivered);
    if (transition) changes.push({ name: c.name, state: transition, detail, since: transition === 'clear' ? prev!.since : at });
    logCondition(ctx, c, transition, since);
  }
  await ctx.notifications.update((s) => {
    Object.assign(s.conditions, next);
    for (const change of changes) for (const sent of Object.values(s.channels)) delete sent[`health:${change.name}`];
  });
  const notifications: NotificationResult[] = [];
  const undelivered: Record<string, ConditionState['undelivered']> = {};
  const send = async (change: HealthChange, event: NotifyEvent, only?: ReadonlySet<string>) => {
    const results = await notify(ctx, healthNotification(ctx.config.host, ctx.secrets.redactDeep(change), event, now), ctx.logger, only);
    notifications.push(...results);
    const failed = results.filter((r) => r.status === 'failed').map((r) => r.channel);
    undelivered[change.name] = failed.length ? { change, event, channels: failed } : undefined;
  };
  for (const change of changes) {
    await send(change, change.state === 'clear' ? 'recovery' : warningConditions.has(change.name) ? 'warning' : 'failure');
  }
  for (const r of resends) await send(r.change, r.event, new Set(r.channels));
  await ctx.notifications.update((s) => {
    for (const [name, pending] of Object.entries(undelivered)) {
      const condition = s.conditions[name];
      if (!condition) continue;
      if (pending) condition.undelivered = pending;
      else delete condition.undelivered;
    }
  });
  return { changes, notifications };
}

function logCondition(ctx: EngineContext, c: CheckResult, transition: 'begin' | 'clear' | undefined, since: string): void {
  const detail = c.detail ?? '';
  const fields = { condition: c.name, ok: c.ok, state: transition ?? (c.ok ? 'ok' : 'failing'), since };
  const severe = !warningConditions.has(c.name);
  if (transition === 'begin') ctx.logger[severe ? 'error' : 'warn'](`health ${c.name}: began failing: ${detail}`, fields);
  else if (transition === 'clear') ctx.logger.info(`health ${c.name}: cleared: ${detail}`, fields);
  else if (!c.ok) ctx.logger.warn(`health ${c.name}: still failing since ${since}: ${detail}`, fields);
  else ctx.logger.info(`health ${c.name}: ok: ${detail}`, fields);
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

function restoreTestCheck(ctx: EngineContext, records: HistoryRecord[], now: Date): CheckResult {
  const last = [...records].reverse().find((r) => r.kind === 'restore-test');
  const maxAge = ctx.config.checks.restoreTest?.maxAgeMs;
  if (!last) return { name: 'restore-test', ok: !maxAge, detail: 'no restore test recorded yet' };
  const where = `${last.snapshot ?? 'no snapshot'} from ${last.repository ?? BACKUP_ROOT}`;
  if (last.status === 'failed') return { name: 'restore-test', ok: false, detail: `restore test of ${where} failed at ${last.finishedAt}` };
  const age = now.getTime() - Date.parse(last.finishedAt);
  if (maxAge && age > maxAge) {
    return { name: 'restore-test', ok: false, detail: `the last restore test (${where}) passed ${formatAge(age)} ago (max ${formatAge(maxAge)})` };
  }
  return { name: 'restore-test', ok: true, detail: `restore test of ${where} passed at ${last.finishedAt}` };
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

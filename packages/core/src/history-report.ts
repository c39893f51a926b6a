import type { EngineContext } from './context.js';
import { BackupError } from './errors.js';
import type { HistoryRecord } from './history.js';

/** Per profile: its runs in the window (missed ones counted among the failures), and its last success ever. */
export interface ProfileSummary {
  profile: string;
  runs: number;
  successes: number;
  failures: number;
  /** Scheduled runs that never started (the lock stayed held, the run could not start): part of `failures`. */
  missed: number;
  /** Stored bytes of the snapshots the window's runs committed (a run whose replication failed committed one too). */
  bytesStored: number;
  lastSuccess: { at: string; snapshot: string | null } | null;
}

export interface DestinationSummary {
  destination: string;
  replications: number;
  ok: number;
  failed: number;
  lastOk: string | null;
  lastFailure: { at: string; error: string | null } | null;
}

export interface HistoryReport {
  days: number;
  since: string;
  until: string;
  profiles: ProfileSummary[];
  destinations: DestinationSummary[];
  restoreTests: { runs: number; successes: number; failures: number; last: { at: string; status: 'success' | 'failed'; snapshot: string | null; repository: string | null } | null };
}

const DAY_MS = 24 * 3600_000;

/**
 * `report`: what the run history (state/history.jsonl) says about the last `days` days: per
 * profile, per destination, and the restore tests. The configured profiles and destinations are
 * always listed, so one that never ran shows as zero runs rather than not at all.
 */
export async function historyReport(ctx: EngineContext, options: { days?: number } = {}): Promise<HistoryReport> {
  const days = options.days ?? 7;
  if (!Number.isInteger(days) || days < 1) throw new BackupError('E_USAGE', `--days: expected a whole number of days, 1 or more (got ${days})`);
  const until = ctx.now();
  const since = new Date(until.getTime() - days * DAY_MS);
  const records = await ctx.history.read();
  const inWindow = records.filter((r) => Date.parse(r.finishedAt) >= since.getTime());
  return {
    days,
    since: since.toISOString(),
    until: until.toISOString(),
    profiles: profileSummaries(ctx, records, inWindow),
    destinations: destinationSummaries(ctx, inWindow),
    restoreTests: restoreTestSummary(inWindow),
  };
}

function profileSummaries(ctx: EngineContext, records: HistoryRecord[], inWindow: HistoryRecord[]): ProfileSummary[] {
  const runs = inWindow.filter((r) => r.kind === 'run');
  const names = [...new Set([...Object.keys(ctx.config.profiles), ...runs.flatMap((r) => (r.profile ? [r.profile] : []))])];
  return names.map((profile) => {
    const mine = runs.filter((r) => r.profile === profile);
    const ok = mine.filter((r) => r.status === 'success');
    const last = records.findLast((r) => r.kind === 'run' && r.profile === profile && r.status === 'success');
    return {
      profile,
      runs: mine.length,
      successes: ok.length,
      failures: mine.length - ok.length,
      missed: mine.filter((r) => r.missed === true).length,
      bytesStored: mine.reduce((sum, r) => sum + (r.snapshot ? (r.bytes ?? 0) : 0), 0),
      lastSuccess: last ? { at: last.finishedAt, snapshot: last.snapshot ?? null } : null,
    };
  });
}

function destinationSummaries(ctx: EngineContext, inWindow: HistoryRecord[]): DestinationSummary[] {
  const byName = new Map<string, DestinationSummary>();
  const summary = (destination: string) => {
    let s = byName.get(destination);
    if (!s) byName.set(destination, (s = { destination, replications: 0, ok: 0, failed: 0, lastOk: null, lastFailure: null }));
    return s;
  };
  for (const name of ctx.repositories.destinations.keys()) summary(name);
  for (const r of inWindow) {
    if (r.kind !== 'run' && r.kind !== 'replicate') continue;
    for (const d of r.destinations ?? []) {
      const s = summary(d.name);
      s.replications++;
      if (d.status === 'ok') {
        s.ok++;
        s.lastOk = r.finishedAt;
      } else {
        s.failed++;
        s.lastFailure = { at: r.finishedAt, error: d.error ?? null };
      }
    }
  }
  return [...byName.values()];
}

function restoreTestSummary(inWindow: HistoryRecord[]): HistoryReport['restoreTests'] {
  const tests = inWindow.filter((r) => r.kind === 'restore-test');
  const last = tests.at(-1);
  const successes = tests.filter((r) => r.status === 'success').length;
  return {
    runs: tests.length,
    successes,
    failures: tests.length - successes,
    last: last ? { at: last.finishedAt, status: last.status, snapshot: last.snapshot ?? null, repository: last.repository ?? null } : null,
  };
}

/**
 * Retention policy: which snapshots `prune` keeps. Like restic's `forget --keep-*`, with these rules:
 *
 * - Snapshots are walked newest first (equal times: id descending).
 * - Calendar buckets are in UTC: hourly `YYYY-MM-DDTHH`, daily `YYYY-MM-DD`, weekly the ISO 8601
 *   week (`YYYY-Www`, ISO week-year), monthly `YYYY-MM`, yearly `YYYY`. For each kind with a count
 *   n > 0, a snapshot is kept when its bucket differs from the last bucket kept for that kind and
 *   fewer than n buckets have been kept: the newest snapshot of each of the n most recent buckets
 *   that hold snapshots. `last: n` keeps the n newest.
 * - `within: "7d"` keeps every snapshot dated at or after `now` minus the duration (calendar
 *   arithmetic in UTC; an overflowing day rolls over, e.g. 31 March minus 1m is 3 March).
 * - A snapshot with `good: false` (failed verification) never fills a bucket, counts toward `last`
 *   or is kept by `within`: it is removed.
 * - A snapshot dated more than 5 minutes after `now` is kept with reason "future" and takes no part
 *   in the rules above: we cannot reason about it, so it is surfaced to the user instead.
 * - The newest good snapshot that is not in the future is always kept (reason "newest").
 * - A policy that keeps nothing (no count > 0, no non-zero `within`) is refused with E_RETENTION.
 */
import { z } from './vendor/zod.js';
import { BackupError } from './errors.js';

const count = z.number().int().min(0).optional();

export const retentionPolicySchema = z
  .object({
    last: count,
    hourly: count,
    daily: count,
    weekly: count,
    monthly: count,
    yearly: count,
    within: z
      .string()
      .refine((text) => parseDuration(text) !== undefined, {
        error: 'expected a duration like "7d", "12h" or "1y6m" (units y, m, w, d, h)',
      })
      .optional(),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof retentionPolicySchema>;

export const DEFAULT_RETENTION: RetentionPolicy = { daily: 7, weekly: 4, monthly: 12 };

export interface RetentionCandidate {
  id: string;
  time: Date;
  /** false: known bad (e.g. failed verification). Default true. */
  good?: boolean;
}

export interface RetentionDecision {
  id: string;
  time: Date;
  keep: boolean;
  reasons: string[];
}

export interface Duration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

/** Parses "36h", "7d", "2w", "1y6m", "1y2m3d4h" (m = months, w = 7 days); undefined if malformed. */
export function parseDuration(text: string): Duration | undefined {
  if (!/^(\d+[ymwdh])+$/.test(text)) return undefined;
  const d: Duration = { years: 0, months: 0, days: 0, hours: 0 };
  for (const [, digits, unit] of text.matchAll(/(\d+)([ymwdh])/g)) {
    const n = Number(digits);
    if (!Number.isSafeInteger(n)) return undefined;
    if (unit === 'y') d.years += n;
    else if (unit === 'm') d.months += n;
    else if (unit === 'w') d.days += 7 * n;
    else if (unit === 'd') d.days += n;
    else d.hours += n;
  }
  return d;
}

/** For logs: "last 3, daily 7, weekly 4, within 7d". */
export function describePolicy(policy: RetentionPolicy): string {
  const parts = COUNT_KINDS.filter((k) => (policy[k] ?? 0) > 0).map((k) => `${k} ${policy[k]}`);
  if (policy.within !== undefined) parts.push(`within ${policy.within}`);
  return parts.length ? parts.join(', ') : 'nothing';
}

const CLOCK_SKEW_MS = 5 * 60 * 1000;
const COUNT_KINDS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type BucketKind = (typeof COUNT_KINDS)[number];

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The ISO 8601 week of a UTC date: "2026-W53". */
function isoWeek(time: Date): string {
  // The ISO week-year is the year of the week's Thursday; week 1 holds the year's first Thursday.
  const day = (time.getUTCDay() + 6) % 7; // Monday = 0
  const thursday = Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), time.getUTCDate() + 3 - day);
  const year = new Date(thursday).getUTCFullYear();
  const week = 1 + Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86_400_000));
  return `${pad(year, 4)}-W${pad(week)}`;
}

function bucketOf(kind: Exclude<BucketKind, 'last'>, t: Date): string {
  const ymd = `${pad(t.getUTCFullYear(), 4)}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
  switch (kind) {
    case 'hourly':
      return `${ymd}T${pad(t.getUTCHours())}`;
    case 'daily':
      return ymd;
    case 'weekly':
      return isoWeek(t);
    case 'monthly':
      return ymd.slice(0, 7);
    case 'yearly':
      return ymd.slice(0, 4);
  }
}

/** `now` minus the duration, in UTC calendar arithmetic. */
function subtract(now: Date, d: Duration): number {
  const t = new Date(now.getTime());
  t.setUTCFullYear(t.getUTCFullYear() - d.years, t.getUTCMonth() - d.months, t.getUTCDate() - d.days);
  const bound = t.getTime() - d.hours * 3_600_000;
  // A duration longer than any representable date reaches back to the beginning of time.
  return Number.isNaN(bound) ? -Infinity : bound;
}

/** Decides, for each snapshot, whether the policy keeps it. One decision per input, newest first. */
export function applyRetention(
  snapshots: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision[] {
  const parsed = retentionPolicySchema.safeParse(policy);
  if (!parsed.success) {
    throw new BackupError('E_RETENTION', `invalid retention policy: ${z.prettifyError(parsed.error)}`, {
      details: { policy },
    });
  }
  const within = policy.within === undefined ? undefined : parseDuration(policy.within);
  const withinKeeps = within !== undefined && Object.values(within).some((n) => n > 0);
  if (!withinKeeps && !COUNT_KINDS.some((k) => (policy[k] ?? 0) > 0)) {
    throw new BackupError(
      'E_RETENTION',
      'retention policy keeps no snapshots: set at least one of last, hourly, daily, weekly, monthly, yearly, within',
      { details: { policy } },
    );
  }
  const bad = snapshots.find((s) => Number.isNaN(s.time.getTime()));
  if (bad) throw new BackupError('E_RETENTION', `snapshot ${bad.id} has an invalid time`, { details: { id: bad.id } });

  const nowMs = now.getTime();
  const withinBound = withinKeeps ? subtract(now, within) : Infinity;
  const kept = new Map<BucketKind, { count: number; last: string | undefined }>(
    COUNT_KINDS.map((k) => [k, { count: 0, last: undefined }]),
  );

  const sorted = [...snapshots].sort(
    (a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
  );
  let newestSeen = false;
  return sorted.map(({ id, time, good }) => {
    const t = time.getTime();
    if (t > nowMs + CLOCK_SKEW_MS) return { id, time, keep: true, reasons: ['future'] };
    if (good === false) return { id, time, keep: false, reasons: [] };

    const reasons: string[] = [];
    if (!newestSeen) {
      newestSeen = true;
      reasons.push('newest');
    }
    for (const kind of COUNT_KINDS) {
      const n = policy[kind] ?? 0;
      const state = kept.get(kind)!;
      const bucket = kind === 'last' ? String(state.count + 1) : bucketOf(kind, time);
      if (n > 0 && state.count < n && bucket !== state.last) {
        state.count += 1;
        state.last = bucket;
        reasons.push(`${kind} ${bucket}`);
      }
    }
    if (t >= withinBound) reasons.push(`within ${policy.within}`);
    return { id, time, keep: reasons.length > 0, reasons };
  });
}

/**
 * Retention policy: which snapshots `prune` keeps. Like restic's `forget --keep-*`, with these rules:
 *
 * - Snapshots are walked newest first (equal times: id descending).
 * - Calendar buckets are in UTC: hourly `YYYY-MM-DDTHH`, daily `YYYY-MM-DD`, weekly the ISO 8601
 *   week (`YYYY-Www`, ISO week-year), monthly `YYYY-MM`, yearly `YYYY`. For each kind with a count
 *   n > 0, a snapshot is kept when its bucket differs from the last bucket kept for that kind and
 *   fewer than n buckets have been kept: the newest snapshot of each of the n most recent buckets
 *   that hold snapshots. `last: n` keeps the n newest.
 * - `within: "7d"` keeps every snapshot dated at or after `now` minus the duration (duration.ts's
 *   grammar; calendar arithmetic in UTC, an overflowing day rolls over: 31 March minus 1mo is 3 March).
 * - A snapshot dated more than 5 minutes after `now` is kept with reason "future" and takes no part
 *   in the rules above: we cannot reason about it, so it is surfaced to the user instead.
 * - The newest snapshot that is not in the future is always kept (reason "newest").
 * - Suspects (`suspect: true`: the latest verification of the snapshot failed) are never deleted
 *   because of that failure. A failed verify may be a mistyped passphrase or a read error, not a
 *   bad snapshot, so the set removed is at most what the policy removes when every snapshot is
 *   treated as good. The policy is applied twice: once as if all were good (the "plain" walk),
 *   once with suspects filling no bucket, counting toward no `last` and kept by no `within` (so
 *   a good snapshot is kept in a suspect's place, and the newest good one is always kept). A
 *   snapshot is kept if either walk keeps it; a suspect only while the plain walk keeps it.
 *   Deleting a suspect sooner takes `sutazai-backup forget`.
 * - Partial snapshots (`partial: true`: some of the profile's sources failed and are not in it)
 *   are treated the same way: they fill no bucket, so a complete snapshot is kept in their place
 *   for the sources they lack, and they are kept only while the plain walk keeps them.
 * - A policy that keeps nothing (no count > 0, no non-zero `within`) is refused: by the rc
 *   file's schema at load time, and here with E_RETENTION.
 */
import { z } from './vendor/zod.js';
import { isZeroDuration, parseDuration, readDuration, subtractDuration } from './duration.js';
import { BackupError } from './errors.js';

export { parseDuration, type Duration } from './duration.js';

const count = z.number().int().min(0).optional();

const KEEPS_NOTHING =
  'keeps no snapshots: set at least one of last, hourly, daily, weekly, monthly, yearly above 0, or within to a duration above 0 (e.g. { daily: 7 })';

const policyFields = z
  .object({
    last: count,
    hourly: count,
    daily: count,
    weekly: count,
    monthly: count,
    yearly: count,
    within: z
      .string()
      .superRefine((text, ctx) => {
        const { problem } = readDuration(text);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof policyFields>;

export const retentionPolicySchema = policyFields.refine(
  // A malformed `within` is reported by its own check: this one speaks only of policies that parse.
  (p: RetentionPolicy) => (p.within !== undefined && parseDuration(p.within) === undefined) || policyKeeps(p),
  { error: KEEPS_NOTHING },
);

export const DEFAULT_RETENTION: RetentionPolicy = { daily: 7, weekly: 4, monthly: 12 };

export interface RetentionCandidate {
  id: string;
  time: Date;
  /** The latest verification of this snapshot failed: it fills no bucket, but is not deleted for it. */
  suspect?: boolean;
  /** Some sources failed in the run that made it: it fills no bucket either. */
  partial?: boolean;
}

export interface RetentionDecision {
  id: string;
  time: Date;
  keep: boolean;
  reasons: string[];
  /** Set on suspects (kept or not). */
  suspect?: true;
  /** Set on partial snapshots (kept or not). */
  partial?: true;
}

/** Whether a policy keeps anything: a count above 0 or a non-zero `within`. */
export function policyKeeps(policy: RetentionPolicy): boolean {
  const within = policy.within === undefined ? undefined : parseDuration(policy.within);
  return (within !== undefined && !isZeroDuration(within)) || COUNT_KINDS.some((k) => (policy[k] ?? 0) > 0);
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

/** Decides, for each snapshot, whether the policy keeps it. One decision per input, newest first. */
export function applyRetention(
  snapshots: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision[] {
  const parsed = retentionPolicySchema.safeParse(policy);
  if (!parsed.success) {
    const message = policyKeeps(policy) ? `invalid retention policy: ${z.prettifyError(parsed.error)}` : `retention policy ${KEEPS_NOTHING}`;
    throw new BackupError('E_RETENTION', message, { details: { policy } });
  }
  const bad = snapshots.find((s) => Number.isNaN(s.time.getTime()));
  if (bad) throw new BackupError('E_RETENTION', `snapshot ${bad.id} has an invalid time`, { details: { id: bad.id } });

  const sorted = [...snapshots].sort(
    (a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
  );
  const plain = walk(sorted, policy, now, () => false);
  const fillsNoBucket = (s: RetentionCandidate) => s.suspect === true || s.partial === true;
  if (!sorted.some(fillsNoBucket)) return plain;
  const adjusted = walk(sorted, policy, now, fillsNoBucket);
  return sorted.map((s, i) => {
    const p = plain[i]!;
    const a = adjusted[i]!;
    if (fillsNoBucket(s)) return { ...p, ...(s.suspect ? { suspect: true as const } : {}), ...(s.partial ? { partial: true as const } : {}) };
    return a.keep ? a : p;
  });
}

/** One pass of the policy over `sorted` (newest first); `skip`ped snapshots take no part and are not kept. */
function walk(
  sorted: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  now: Date,
  skip: (s: RetentionCandidate) => boolean,
): RetentionDecision[] {
  const within = policy.within === undefined ? undefined : parseDuration(policy.within);
  const withinKeeps = within !== undefined && !isZeroDuration(within);
  const nowMs = now.getTime();
  const withinBound = withinKeeps ? subtractDuration(now, within) : Infinity;
  const kept = new Map<BucketKind, { count: number; last: string | undefined }>(
    COUNT_KINDS.map((k) => [k, { count: 0, last: undefined }]),
  );
  let newestSeen = false;
  return sorted.map((s) => {
    const { id, time } = s;
    const t = time.getTime();
    if (t > nowMs + CLOCK_SKEW_MS) return { id, time, keep: true, reasons: ['future'] };
    if (skip(s)) return { id, time, keep: false, reasons: [] };

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

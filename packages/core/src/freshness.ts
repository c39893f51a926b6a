import type { CheckResult } from './checks.js';
import type { ProfileConfig, ResolvedConfig } from './config.js';
import type { HistoryRecord } from './history.js';
import { formatAge } from './notify.js';
import { nextFireTime, parseCron } from './schedule.js';
import { parseSnapshotId } from './snapshot-id.js';

const DAY = 86_400_000;
/** Enough fire times to see every gap of a schedule: a year of them, and at most this many. */
const MAX_FIRES = 2000;

const intervals = new Map<string, number>();

/**
 * The longest gap between two fire times of a cron schedule: a day for "0 2 * * *", three days
 * for weekdays only, 31 days for a monthly one. Read over the fire times of a period the schedule
 * repeats in (UTC: daylight saving would only add an hour), from a fixed start so that the answer
 * never changes.
 */
export function scheduleInterval(expression: string): number {
  const known = intervals.get(expression);
  if (known !== undefined) return known;
  const schedule = parseCron(expression);
  // Fire times repeat daily when no day is restricted, weekly when only weekdays are.
  const { dayOfMonth, month, dayOfWeek } = schedule;
  const span = dayOfMonth.restricted || month.restricted ? 366 * DAY : dayOfWeek.restricted ? 15 * DAY : 2 * DAY;
  const first = nextFireTime(schedule, new Date(Date.UTC(2026, 0, 1)), 'utc');
  let longest = 0;
  let t = first;
  for (let fires = 0; fires < MAX_FIRES && t.getTime() - first.getTime() <= span; fires++) {
    const next = nextFireTime(schedule, t, 'utc');
    longest = Math.max(longest, next.getTime() - t.getTime());
    t = next;
  }
  intervals.set(expression, longest);
  return longest;
}

/** How old a profile's newest snapshot may get: its `maxAge`, else twice its schedule's interval, else `checks.maxAge`. */
export function profileMaxAge(profile: ProfileConfig, checks: ResolvedConfig['checks']): number {
  if (profile.maxAgeMs !== undefined) return profile.maxAgeMs;
  return profile.schedule ? 2 * scheduleInterval(profile.schedule) : checks.maxAgeMs;
}

/**
 * The profiles whose freshness is checked: every one with a schedule or a `maxAge`; one with
 * neither is checked against `checks.maxAge` only when no profile has a schedule (beside
 * scheduled ones, an unscheduled profile is run by hand).
 */
export function watchedProfiles(config: ResolvedConfig): ProfileConfig[] {
  const profiles = Object.values(config.profiles);
  const scheduled = profiles.some((p) => p.schedule);
  return profiles.filter((p) => p.schedule || p.maxAgeMs !== undefined || !scheduled);
}

/**
 * One freshness check per watched profile, on that profile's newest snapshot in backupRoot
 * (snapshot ids carry the profile), so that a weekly that stopped happening fails while the
 * dailies are fresh. A profile with no snapshot yet counts from when backups began (the oldest
 * snapshot or history record): a weekly added on Monday is not missing until its maxAge passed.
 */
export function freshnessChecks(config: ResolvedConfig, ids: readonly string[], records: readonly HistoryRecord[], now: Date): CheckResult[] {
  const newest = new Map<string, { id: string; time: Date }>();
  for (const id of ids) {
    const parsed = parseSnapshotId(id);
    if (parsed) newest.set(parsed.profile, { id, time: parsed.time });
  }
  const began = Math.min(...[...newest.values()].map((n) => n.time.getTime()), ...records.map((r) => Date.parse(r.startedAt)).filter(Number.isFinite));
  return watchedProfiles(config).map((profile) => {
    const maxAge = profileMaxAge(profile, config.checks);
    const latest = newest.get(profile.name);
    const check = { name: 'freshness', profile: profile.name };
    if (!latest) {
      const waited = now.getTime() - began;
      const ok = newest.size > 0 && waited <= maxAge;
      const since = newest.size > 0 ? `, backups began ${formatAge(Math.max(0, waited))} ago` : '';
      return { ...check, ok, detail: `no snapshot of profile ${profile.name} yet${since} (max age ${formatAge(maxAge)})` };
    }
    const age = now.getTime() - latest.time.getTime();
    return {
      ...check,
      ok: age <= maxAge,
      detail: `latest snapshot ${latest.id} of profile ${profile.name} is ${formatAge(Math.max(0, age))} old (max ${formatAge(maxAge)})`,
    };
  });
}

/** The smallest maxAge of the watched profiles: how fresh the newest snapshot anywhere must be (offsite lag's default). */
export function tightestMaxAge(config: ResolvedConfig): number {
  const ages = watchedProfiles(config).map((p) => profileMaxAge(p, config.checks));
  return ages.length ? Math.min(...ages) : config.checks.maxAgeMs;
}

import { BackupError, healthSchedule, type ResolvedConfig } from '@sutazai/backup-core';

/** What runs unattended: by cron, a systemd timer, or the daemon. */
export interface UnattendedJob {
  /** `daily` (a profile), `restore-test`, `health`: unit names end with it, the daemon logs it. */
  name: string;
  schedule: string;
  /** The command line after the program, without `--config`. */
  args: string[];
  description: string;
  /** The profile a run job backs up. */
  profile?: string;
}

/** Health conditions (a missing backup, a full disk) alert only when something checks them: hourly, unless `checks.schedule` says. */
export const DEFAULT_HEALTH_SCHEDULE = '17 * * * *';

/** Names of the jobs and units that are not a profile's. */
const RESERVED = new Set(['restore-test', 'health', 'daemon', 'failure']);

/** `6h`, `90min`, `45s`: a duration for `--wait` that reads as the user would write it. */
export function formatDuration(ms: number): string {
  if (ms > 0 && ms % 3600_000 === 0) return `${ms / 3600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}min`;
  return `${Math.round(ms / 1000)}s`;
}

/**
 * Every scheduled job of a config: each profile with a `schedule` (a run that waits `waitMs`
 * for the lock), the restore test (`checks.restoreTest.schedule`) and `status --notify`
 * (`checks.schedule`; hourly by default when a notify channel is configured).
 */
export function unattendedJobs(config: ResolvedConfig, waitMs: number): UnattendedJob[] {
  const out: UnattendedJob[] = [];
  for (const p of Object.values(config.profiles)) {
    if (!p.schedule) continue;
    if (RESERVED.has(p.name)) {
      throw new BackupError('E_CONFIG', `profiles.${p.name}: a scheduled profile cannot be named "${p.name}": the units and the daemon use that name for their own job; rename the profile`);
    }
    out.push({ name: p.name, schedule: p.schedule, args: ['run', '--profile', p.name, '--wait', formatDuration(waitMs)], description: `back up profile ${p.name}`, profile: p.name });
  }
  const rt = config.checks.restoreTest;
  if (rt?.schedule) {
    out.push({ name: 'restore-test', schedule: rt.schedule, args: ['restore-test', ...(rt.from ? ['--from', rt.from] : [])], description: 'restore test' });
  }
  const health = healthSchedule(config) ?? (config.notifiers.length ? DEFAULT_HEALTH_SCHEDULE : undefined);
  if (health) out.push({ name: 'health', schedule: health, args: ['status', '--notify'], description: 'check health and alert on changes' });
  return out;
}

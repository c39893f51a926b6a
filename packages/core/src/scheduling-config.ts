import path from 'node:path';
import { z } from './vendor/zod.js';
// A function declaration: callable from config.ts's import cycle before either module finishes.
import { parseInterval, type ResolvedConfig } from './config.js';
import { expandHome } from './fs.js';

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** What systemd and cron accept as a user name (or a numeric uid). */
const USER_NAME = /^([a-z_][a-z0-9_-]*[$]?|\d+)$/i;

/** How long a scheduled run waits for the lock when another run holds it. */
export const DEFAULT_SCHEDULED_WAIT_MS = 6 * 3600_000;

/**
 * The rc file's `scheduling:` block: how `schedule`, `systemd print` and `daemon` set up
 * unattended runs. Every key can also be given on their command line.
 */
export const schedulingSchema = z
  .object({
    /** `User=` of the units, and the user field of `schedule --system` (/etc/cron.d) lines. */
    user: z.string().regex(USER_NAME, 'expected a user name such as "backup"').optional(),
    /** A file of `NAME=value` lines (mode 0600): sourced by crontab lines, `EnvironmentFile=` of units. */
    envFile: z.string().min(1).optional(),
    /** `LoadCredential=NAME:PATH` of the units: `${NAME}` then reads `$CREDENTIALS_DIRECTORY/NAME`. */
    credentials: z
      .record(z.string().regex(VAR_NAME, 'a credential is named like an environment variable (letters, digits, "_")'), z.string().min(1))
      .optional(),
    /** `--wait` of scheduled runs: how long one waits for the lock another run holds. */
    wait: z
      .union([z.number().nonnegative(), z.string()])
      .refine((v) => typeof v === 'number' || parseInterval(v) !== undefined, 'expected a duration like "6h", "90min" or a number of seconds')
      .optional(),
    /** More `ReadWritePaths=` of the units, for what a source or plugin writes outside backupRoot. */
    readWritePaths: z.array(z.string().min(1)).optional(),
  })
  .strict();

export interface SchedulingOptions {
  user: string | undefined;
  envFile: string | undefined;
  credentials: Record<string, string>;
  waitMs: number;
  readWritePaths: string[];
}

/** The `scheduling:` block of a loaded config (validated when it loaded), paths resolved from the rc file's folder. */
export function schedulingOptions(config: Pick<ResolvedConfig, 'raw' | 'dir'>): SchedulingOptions {
  const o = schedulingSchema.parse(config.raw.scheduling ?? {});
  const resolve = (p: string) => path.resolve(config.dir, expandHome(p));
  return {
    user: o.user,
    envFile: o.envFile ? resolve(o.envFile) : undefined,
    credentials: Object.fromEntries(Object.entries(o.credentials ?? {}).map(([k, v]) => [k, resolve(v)])),
    waitMs: o.wait === undefined ? DEFAULT_SCHEDULED_WAIT_MS : typeof o.wait === 'number' ? o.wait * 1000 : parseInterval(o.wait)!,
    readWritePaths: (o.readWritePaths ?? []).map(resolve),
  };
}

/** `checks.schedule`: when the daemon (and the generated units) run `status --notify`. */
export function healthSchedule(config: Pick<ResolvedConfig, 'raw'>): string | undefined {
  const checks = config.raw.checks as { schedule?: unknown } | undefined;
  return typeof checks?.schedule === 'string' ? checks.schedule : undefined;
}

import { z } from '../vendor/zod.js';
import { compressionSchema } from '../manifest.js';
import { DEFAULT_NOTIFY_ON, NOTIFY_EVENTS } from '../notify.js';
import { retentionPolicySchema } from '../retention.js';
import { parseCron } from '../schedule.js';
import { schedulingSchema } from '../scheduling-config.js';
import { readDuration } from '../duration.js';

/** Names of sources, destinations, notifiers, profiles and the host. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
export const nameMessage = 'names may hold letters, digits, "-" and "_" (no dots or spaces), up to 63 characters';

export const pluginEntrySchema = z.looseObject({ use: z.string().min(1, 'expected a plugin name, package or path') });
export type PluginEntrySpec = z.infer<typeof pluginEntrySchema>;

const cronSchema = z.string().superRefine((text, ctx) => {
  try {
    parseCron(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a cron schedule: ${(err as Error).message}` });
  }
});

/** A fixed interval in milliseconds: a duration without months or years (duration.ts), or a number of seconds. */
export const intervalSchema = z.union([z.number().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value * 1000;
  const { duration, problem } = readDuration(value, { fixed: true });
  if (problem !== undefined) {
    ctx.addIssue({ code: 'custom', message: problem });
    return z.NEVER;
  }
  return duration.ms;
});

const profileSchema = z
  .object({
    schedule: cronSchema.optional(),
    sources: z.union([z.literal('*'), z.array(z.string()).min(1)]).default('*'),
    retention: retentionPolicySchema.optional(),
    /** Run the restore test stage after each run of this profile. */
    restoreTest: z.boolean().optional(),
    /** How old this profile's newest snapshot may get (default: twice its schedule's interval, else checks.maxAge). */
    maxAge: intervalSchema.optional(),
    /** One failed source fails the whole run and nothing is committed (the default commits what succeeded). */
    failFast: z.boolean().optional(),
    /** How long the sources of a run may take in all; those still running then are stopped (the snapshot is partial). */
    timeout: intervalSchema.optional(),
  })
  .strict();

const percentSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const fraction =
    typeof value === 'number' ? (value > 1 ? value / 100 : value) : /^\d+(\.\d+)?%$/.test(value) ? Number(value.slice(0, -1)) / 100 : NaN;
  if (!(fraction > 0 && fraction <= 1)) {
    ctx.addIssue({ code: 'custom', message: 'expected a percentage like "85%"' });
    return z.NEVER;
  }
  return fraction;
});

/** A source's engine-handled settings: `timeout: 10min` (it is stopped then, its process group killed), `priority: 10` (higher first). */
export const sourceSettingsSchema = z.object({
  timeout: intervalSchema.optional(),
  priority: z.number().int().optional(),
});
/** How a health condition counts: `warning` alerts, `critical` also makes `status` exit 1, `off` drops the check. */
export const SEVERITIES = ['warning', 'critical', 'off'] as const;
const severitySchema = z.enum(SEVERITIES, { message: `expected one of ${SEVERITIES.join(', ')}` });

/** A notifier's engine-handled settings: `on: [failure, recovery]` (or one event), `throttle: 6h`. */
export const notifierSettingsSchema = z.object({
  on: z
    .preprocess(
      (v) => (typeof v === 'string' ? [v] : v),
      z.array(z.enum(NOTIFY_EVENTS, { message: `expected one of ${NOTIFY_EVENTS.join(', ')}` })).min(1, `list at least one of ${NOTIFY_EVENTS.join(', ')}`),
    )
    .default([...DEFAULT_NOTIFY_ON]),
  throttle: intervalSchema.optional(),
});

/** The rc file's own keys; each plugin checks its options itself (config/plugins.ts). */
export const topLevelSchema = z
  .object({
    backupRoot: z.string().min(1),
    host: z.string().regex(NAME, nameMessage).optional(),
    compression: compressionSchema.default('zstd'),
    compressionLevel: z.number().int().min(-7).max(22).optional(),
    /** How many artifacts are archived, and how many destinations replicated to, at once. */
    concurrency: z.number().int().min(1).max(64).default(2),
    encryption: pluginEntrySchema.optional(),
    /** Authenticated manifests without encryption: an HMAC keyed from this (give it as ${VAR}). */
    integrity: z
      .object({ key: z.string().min(16, 'a key of at least 16 characters (a random one: `openssl rand -base64 32`)') })
      .strict()
      .optional(),
    /** How snapshots are stored: `tar` (one object per artifact) or `restic` (restic's deduplicating format v2). */
    repository: z
      .object({ format: z.enum(['tar', 'restic']).default('tar'), password: z.string().min(1).optional() })
      .strict()
      .default({ format: 'tar' }),
    sources: z.record(z.string(), pluginEntrySchema).refine((s) => Object.keys(s).length > 0, 'at least one source is needed'),
    destinations: z.record(z.string(), pluginEntrySchema).default({}),
    notify: z.record(z.string(), pluginEntrySchema).default({}),
    plugins: z.array(z.union([pluginEntrySchema, z.literal(false), z.null()])).default([]),
    profiles: z.record(z.string(), profileSchema).optional(),
    retention: retentionPolicySchema.optional(),
    checks: z
      .looseObject({
        maxAge: intervalSchema.default(26 * 3600_000),
        maxStorageUsage: percentSchema.default(0.85),
        restoreTest: z
          .object({ schedule: cronSchema.optional(), from: z.string().optional(), maxAge: intervalSchema.optional(), severity: severitySchema.optional() })
          .strict()
          .optional(),
        /** 3-2-1 non-compliance; an offsite copy whose newest snapshot is older than `maxAge` (docs/design.md Part C). */
        threeTwoOne: severitySchema.default('warning'),
        offsiteLag: z.object({ maxAge: intervalSchema.optional(), severity: severitySchema.default('warning') }).strict().optional(),
        /** When `status --notify` runs from the daemon and the generated units (docs/design.md Part C). */
        schedule: cronSchema.optional(),
      })
      .default({ maxAge: 26 * 3600_000, maxStorageUsage: 0.85, threeTwoOne: 'warning' }),
    scheduling: schedulingSchema.optional(),
    log: z.object({ level: z.enum(['debug', 'info', 'warn', 'error']).optional() }).strict().default({}),
    /** Refuse an rc file that others can read when it holds literal secrets. */
    strictPermissions: z.boolean().default(false),
  })
  .strict();

export type TopLevelConfig = z.output<typeof topLevelSchema>;

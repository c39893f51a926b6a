import { existsSync, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cosmiconfig } from './vendor/cosmiconfig.js';
import { z } from './vendor/zod.js';
import { BackupError, ConfigError, isBackupError, type ConfigIssue } from './errors.js';
import { readCredential } from './credentials.js';
import { isEncryptionKey, lockedEncryptionEntry } from './deferred-secrets.js';
import { expandHome } from './fs.js';
import { compressionSchema, type Compression } from './manifest.js';
import { DEFAULT_NOTIFY_ON, NOTIFY_EVENTS } from './notify.js';
import type { Plugin, PluginFactory, PluginKind, SourceRead } from './plugin.js';
import { DEFAULT_RETENTION, retentionPolicySchema, type RetentionPolicy } from './retention.js';
import { parseCron } from './schedule.js';
import { schedulingSchema } from './scheduling-config.js';
import { backupRootInSources } from './source-reads.js';
import { joinPath, zodIssues } from './schema.js';
import { isSecretKey, secrets as defaultSecrets, urlCredentials, type SecretRegistry } from './secrets.js';

export const MODULE_NAME = 'sutazai-backup';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const nameMessage = 'names may hold letters, digits, "-" and "_" (no dots or spaces), up to 63 characters';

const pluginEntrySchema = z.looseObject({ use: z.string().min(1, 'expected a plugin name, package or path') });

const cronSchema = z.string().superRefine((text, ctx) => {
  try {
    parseCron(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a cron schedule: ${(err as Error).message}` });
  }
});

const profileSchema = z
  .object({
    schedule: cronSchema.optional(),
    sources: z.union([z.literal('*'), z.array(z.string()).min(1)]).default('*'),
    retention: retentionPolicySchema.optional(),
    /** Run the restore test stage after each run of this profile. */
    restoreTest: z.boolean().optional(),
  })
  .strict();

const intervalSchema = z.union([z.number().positive(), z.string()]).transform((value, ctx) => {
  const ms = typeof value === 'number' ? value * 1000 : parseInterval(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration like "26h", "90min", "2d" or a number of seconds' });
    return z.NEVER;
  }
  return ms;
});

const percentSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const fraction =
    typeof value === 'number' ? (value > 1 ? value / 100 : value) : /^\d+(\.\d+)?%$/.test(value) ? Number(value.slice(0, -1)) / 100 : NaN;
  if (!(fraction > 0 && fraction <= 1)) {
    ctx.addIssue({ code: 'custom', message: 'expected a percentage like "85%"' });
    return z.NEVER;
  }
  return fraction;
});

/** A notifier's engine-handled settings: `on: [failure, recovery]` (or one event), `throttle: 6h`. */
const notifierSettingsSchema = z.object({
  on: z
    .preprocess(
      (v) => (typeof v === 'string' ? [v] : v),
      z.array(z.enum(NOTIFY_EVENTS, { message: `expected one of ${NOTIFY_EVENTS.join(', ')}` })).min(1, `list at least one of ${NOTIFY_EVENTS.join(', ')}`),
    )
    .default([...DEFAULT_NOTIFY_ON]),
  throttle: intervalSchema.optional(),
});

const topLevelSchema = z
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
        restoreTest: z.object({ schedule: cronSchema.optional(), from: z.string().optional(), maxAge: intervalSchema.optional() }).strict().optional(),
        /** When `status --notify` runs from the daemon and the generated units (docs/design.md Part C). */
        schedule: cronSchema.optional(),
      })
      .default({ maxAge: 26 * 3600_000, maxStorageUsage: 0.85 }),
    log: z.object({ level: z.enum(['debug', 'info', 'warn', 'error']).optional() }).strict().default({}),
    scheduling: schedulingSchema.optional(),
    /** Refuse an rc file that others can read when it holds literal secrets. */
    strictPermissions: z.boolean().default(false),
  })
  .strict();

export interface ProfileConfig {
  name: string;
  schedule: string | undefined;
  sources: string[];
  retention: RetentionPolicy;
  restoreTest: boolean;
}

/** A loaded plugin, ready to apply. */
export interface PluginEntry {
  /** The rc key path: `sources.app-db`, `plugins[0]`, `encryption`. */
  key: string;
  instance: string;
  kind: PluginKind;
  use: string;
  /** Where the module was loaded from. */
  resolved: string;
  /** The plugin's own options (without `use` and the engine's settings). */
  options: Record<string, unknown>;
  /** Settings the engine handles for every plugin of this kind. */
  settings: Record<string, unknown>;
  plugins: Plugin[];
  /** The local paths a source archives, when its plugin says (`defineSource`'s `reads`). */
  reads?: SourceRead[];
}

export interface ResolvedConfig {
  file: string | undefined;
  dir: string;
  /** The rc content after ${VAR} interpolation (secrets inside; print with `maskSecretKeys`). */
  raw: Record<string, unknown>;
  backupRoot: string;
  host: string;
  compression: Compression;
  compressionLevel: number | undefined;
  concurrency: number;
  retention: RetentionPolicy;
  profiles: Record<string, ProfileConfig>;
  sources: PluginEntry[];
  destinations: PluginEntry[];
  notifiers: PluginEntry[];
  encryption: PluginEntry | undefined;
  /** `integrity:`: manifests authenticated with an HMAC (core's built-in integrity plugin). */
  integrity?: { key: string } | undefined;
  plugins: PluginEntry[];
  checks: { maxAgeMs: number; maxStorageUsage: number; restoreTest?: { schedule?: string; from?: string; maxAgeMs?: number } };
  logLevel: 'debug' | 'info' | 'warn' | 'error' | undefined;
  strictPermissions: boolean;
  warnings: string[];
  /** With `deferEncryptionSecrets`: the encryption `${VAR}`s that were not set (the plugin was not loaded). */
  encryptionSecretsMissing?: ConfigIssue[];
}

export interface LoadConfigOptions {
  /** Where to start searching for the rc file; also a plugin resolution root. Default: process.cwd(). */
  cwd?: string;
  /** An explicit rc file (`--config`). */
  configPath?: string;
  /** An rc object given directly (embedding); `configDir` then says where relative paths start. */
  config?: Record<string, unknown>;
  configDir?: string;
  env?: NodeJS.ProcessEnv;
  /** More folders to resolve plugins from (e.g. the CLI's own installation). */
  resolveFrom?: string[];
  secrets?: SecretRegistry;
  /** For commands that decrypt nothing: an unset `${VAR}` under `encryption` is no error (see deferred-secrets.ts). */
  deferEncryptionSecrets?: boolean;
}

/** Settings that the engine handles itself, per kind of plugin; they are not passed to the plugin. */
const engineSettings: Record<PluginKind, string[]> = {
  source: [],
  destination: ['retention', 'prefix'],
  notifier: ['on', 'throttle'],
  encryption: [],
  plugin: [],
};

/** Finds, reads, interpolates and checks the rc file, and loads every plugin it names. */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const env = options.env ?? process.env;
  const secrets = options.secrets ?? defaultSecrets;

  let file: string | undefined;
  let dir: string;
  let data: unknown;
  if (options.config) {
    data = options.config;
    dir = path.resolve(options.configDir ?? cwd);
  } else {
    ({ file, data } = await readRcFile(cwd, options.configPath));
    dir = path.dirname(file);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError([{ path: '', message: 'expected a mapping of settings (backupRoot, sources, ...)' }], file);
  }

  const issues: ConfigIssue[] = [];
  const literal = literalSecrets(data, '');
  const raw = interpolate(data, '', env, issues, secrets) as Record<string, unknown>;
  const deferred = options.deferEncryptionSecrets ? issues.filter((i) => isEncryptionKey(i.path)) : [];
  issues.splice(0, issues.length, ...issues.filter((i) => !deferred.includes(i)));
  if (issues.length) throw new ConfigError(issues, file);
  registerSecrets(raw, '', secrets);

  const parsed = topLevelSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(zodIssues(parsed.error, ''), file);
  const top = parsed.data;

  for (const [group, record] of [['sources', top.sources], ['destinations', top.destinations], ['notify', top.notify]] as const) {
    for (const name of Object.keys(record)) if (!NAME.test(name)) issues.push({ path: `${group}.${name}`, message: nameMessage });
  }

  const retention = top.retention ?? DEFAULT_RETENTION;
  const sourceNames = Object.keys(top.sources);
  const profiles: Record<string, ProfileConfig> = {};
  for (const [name, p] of Object.entries(top.profiles ?? { default: { sources: '*' as const } })) {
    if (!NAME.test(name)) issues.push({ path: `profiles.${name}`, message: nameMessage });
    const list = p.sources === '*' ? sourceNames : p.sources;
    (p.sources === '*' ? [] : p.sources).forEach((s, i) => {
      if (!sourceNames.includes(s)) {
        issues.push({ path: `profiles.${name}.sources[${i}]`, message: `unknown source "${s}" (sources: ${sourceNames.join(', ')})` });
      }
    });
    profiles[name] = {
      name,
      schedule: 'schedule' in p ? p.schedule : undefined,
      sources: list,
      retention: ('retention' in p && p.retention) || retention,
      restoreTest: ('restoreTest' in p && p.restoreTest) || false,
    };
  }
  if (top.integrity && top.encryption) {
    issues.push({
      path: 'integrity',
      message:
        'not used with encryption: the encryption plugin authenticates manifests (gpg: an HMAC keyed from the passphrase, or with recipients a signature by signingKey); remove integrity',
    });
  }
  const restoreFrom = top.checks.restoreTest?.from;
  if (restoreFrom && !(restoreFrom in top.destinations)) {
    issues.push({ path: 'checks.restoreTest.from', message: `unknown destination "${restoreFrom}"` });
  }
  if (issues.length) throw new ConfigError(issues, file);

  const roots = [dir, cwd, ...(options.resolveFrom ?? []), path.dirname(new URL(import.meta.url).pathname)];
  const load = (key: string, instance: string, kind: PluginKind, entry: z.infer<typeof pluginEntrySchema>) =>
    loadPluginEntry({ key, instance, kind, entry, roots, file, issues, configDir: dir });

  const sources = await Promise.all(Object.entries(top.sources).map(([n, e]) => load(`sources.${n}`, n, 'source', e)));
  const destinations = await Promise.all(Object.entries(top.destinations).map(([n, e]) => load(`destinations.${n}`, n, 'destination', e)));
  const notifiers = await Promise.all(Object.entries(top.notify).map(([n, e]) => load(`notify.${n}`, n, 'notifier', e)));
  const encryption = deferred.length
    ? lockedEncryptionEntry(top.encryption!.use, deferred, file)
    : top.encryption
      ? await load('encryption', 'encryption', 'encryption', top.encryption)
      : undefined;
  const plugins: (PluginEntry | undefined)[] = [];
  for (const [i, e] of top.plugins.entries()) {
    if (e) plugins.push(await load(`plugins[${i}]`, `plugins[${i}]`, 'plugin', e));
  }
  if (issues.length) throw new ConfigError(issues, file);

  const backupRoot = path.resolve(dir, expandHome(top.backupRoot));
  issues.push(...backupRootInSources(backupRoot, sources as PluginEntry[]));
  if (issues.length) throw new ConfigError(issues, file);

  const warnings: string[] = [];
  const exposure = file && literal.length ? await exposedTo(file) : undefined;
  if (exposure) {
    const message =
      `${file} is readable by ${exposure.who} (mode ${exposure.mode}) and holds secrets in ${literal.join(', ')}: ` +
      `run \`chmod 600 ${file}\`, or move them into environment variables (\${VAR})`;
    if (top.strictPermissions) throw new ConfigError([{ path: '', message: `${message} (strictPermissions is on)` }], file);
    warnings.push(message);
  }

  return {
    file,
    dir,
    raw,
    backupRoot,
    host: top.host ?? os.hostname(),
    compression: top.compression,
    compressionLevel: top.compressionLevel,
    concurrency: top.concurrency,
    retention,
    profiles,
    sources: sources as PluginEntry[],
    destinations: destinations as PluginEntry[],
    notifiers: notifiers as PluginEntry[],
    encryption,
    integrity: top.integrity,
    plugins: plugins as PluginEntry[],
    checks: {
      maxAgeMs: top.checks.maxAge,
      maxStorageUsage: top.checks.maxStorageUsage,
      ...(top.checks.restoreTest
        ? {
            restoreTest: {
              ...(top.checks.restoreTest.schedule ? { schedule: top.checks.restoreTest.schedule } : {}),
              ...(top.checks.restoreTest.from ? { from: top.checks.restoreTest.from } : {}),
              ...(top.checks.restoreTest.maxAge ? { maxAgeMs: top.checks.restoreTest.maxAge } : {}),
            },
          }
        : {}),
    },
    logLevel: top.log.level,
    strictPermissions: top.strictPermissions,
    warnings,
    ...(deferred.length ? { encryptionSecretsMissing: deferred } : {}),
  };
}

/**
 * The dotted key paths whose value is a secret written into the rc file itself: a value under a
 * secret-looking key, or a URL's password or secret query value, that is not (only) a ${VAR} reference.
 */
export function literalSecrets(value: unknown, at: string): string[] {
  const key = at.split('.').at(-1)?.replace(/\[\d+\]$/, '') ?? '';
  if (typeof value === 'string' || typeof value === 'number') {
    const text = String(value);
    if (isSecretKey(key)) return hasLiteralText(text) ? [at] : [];
    return urlCredentials(text).some(hasLiteralText) ? [at] : [];
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => literalSecrets(v, `${at}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => literalSecrets(v, joinPath(at, [k])));
  return [];
}

function hasLiteralText(text: string): boolean {
  return text.replace(VAR, '').trim().length > 0;
}

/** Who besides the owner can read the file (group, others), or undefined when nobody can. */
async function exposedTo(file: string): Promise<{ who: string; mode: string } | undefined> {
  const st = await fsp.stat(file).catch(() => undefined);
  if (!st || (st.mode & 0o044) === 0) return undefined;
  const who = [st.mode & 0o040 ? 'its group' : '', st.mode & 0o004 ? 'everyone' : ''].filter(Boolean).join(' and ');
  return { who, mode: (st.mode & 0o777).toString(8).padStart(4, '0') };
}

async function readRcFile(cwd: string, configPath: string | undefined): Promise<{ file: string; data: unknown }> {
  const explorer = cosmiconfig(MODULE_NAME, { searchStrategy: 'global', cache: false });
  let result;
  try {
    if (configPath) {
      const file = path.resolve(cwd, configPath);
      if (!existsSync(file)) throw new ConfigError([{ path: '', message: 'file not found' }], file);
      result = await explorer.load(file);
    } else {
      result = await explorer.search(cwd);
    }
  } catch (err) {
    if (isBackupError(err)) throw err;
    const e = err as Error & { filepath?: string; reason?: string; mark?: { line: number; column: number; snippet?: string } };
    const where = e.filepath ?? (configPath ? path.resolve(cwd, configPath) : undefined);
    const message =
      e.name === 'YAMLException' && e.mark
        ? `YAML syntax error at line ${e.mark.line + 1}, column ${e.mark.column + 1}: ${e.reason ?? e.message}${e.mark.snippet ? `\n${e.mark.snippet}` : ''}`
        : e.name === 'YAMLException'
          ? `YAML syntax error: ${e.message}`
          : `cannot be read: ${e.message}`;
    throw new ConfigError([{ path: '', message }], where, { cause: err });
  }
  if (!result || result.isEmpty) {
    if (result?.filepath) throw new ConfigError([{ path: '', message: 'the file is empty' }], result.filepath);
    throw new BackupError(
      'E_CONFIG',
      `no rc file found: create .sutazai-backuprc in ${cwd} (run \`sutazai-backup init\`), or name one with --config FILE`,
    );
  }
  return { file: result.filepath, data: result.config };
}

const VAR = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces ${VAR} and ${VAR:-default} in every string value; `$${` writes a literal `${`. */
function interpolate(value: unknown, at: string, env: NodeJS.ProcessEnv, issues: ConfigIssue[], secrets: SecretRegistry): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    return value.replace(VAR, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$${') return '${';
      const found = env[name!] ?? readCredential(name!, env, secrets);
      if (found !== undefined && found !== '') {
        if (isSecretKey(name!) || isSecretKey(at.split('.').at(-1) ?? '')) secrets.add(found);
        return found;
      }
      if (fallback !== undefined) return fallback;
      issues.push({ path: at, message: `environment variable ${name} is not set (set it, or write \${${name}:-default})` });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, `${at}[${i}]`, env, issues, secrets));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, joinPath(at, [k]), env, issues, secrets);
    return out;
  }
  return value;
}

function registerSecrets(value: unknown, key: string, secrets: SecretRegistry): void {
  if (typeof value === 'string' || typeof value === 'number') {
    if (isSecretKey(key)) secrets.addCredential(value);
    else if (typeof value === 'string') secrets.addFromUrl(value);
    return;
  }
  if (Array.isArray(value)) value.forEach((v) => registerSecrets(v, key, secrets));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) registerSecrets(v, k, secrets);
}

/** Parses "26h", "90min", "2d", "45s", "1w", "30m" (minutes) into milliseconds. */
export function parseInterval(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3600_000, d: 86_400_000, w: 604_800_000 }[m[2]!]!;
  return Number(m[1]) * unit;
}

const kindLabel: Record<PluginKind, string> = {
  source: 'a source',
  destination: 'a destination',
  notifier: 'a notifier',
  encryption: 'an encryption',
  plugin: 'a hook-only',
};

/** The package a `use:` value names: a short name maps to @sutazai/backup-plugin-<name>. */
export function pluginPackageName(use: string): string {
  if (use.startsWith('@') || use.includes('/')) return use;
  return `@sutazai/backup-plugin-${use}`;
}

async function loadPluginEntry(args: {
  key: string;
  instance: string;
  kind: PluginKind;
  entry: { use: string } & Record<string, unknown>;
  roots: string[];
  file: string | undefined;
  issues: ConfigIssue[];
  configDir: string;
}): Promise<PluginEntry | undefined> {
  const { key, instance, kind, entry, roots, issues } = args;
  const { use, ...rest } = entry;
  const settings: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) (engineSettings[kind].includes(k) ? settings : options)[k] = v;
  if ('prefix' in settings && typeof settings.prefix !== 'string') {
    issues.push({ path: `${key}.prefix`, message: 'expected a string such as "sutazai-prod-1/" (or "" for none)' });
    return undefined;
  }
  if ('retention' in settings) {
    const r = retentionPolicySchema.safeParse(settings.retention);
    if (!r.success) {
      issues.push(...zodIssues(r.error, `${key}.retention`));
      return undefined;
    }
    settings.retention = r.data;
  }
  if (kind === 'notifier') {
    const r = notifierSettingsSchema.safeParse(settings);
    if (!r.success) {
      issues.push(...zodIssues(r.error, key));
      return undefined;
    }
    settings.on = r.data.on;
    if (r.data.throttle !== undefined) settings.throttle = r.data.throttle;
  }

  let resolved: string;
  try {
    resolved = resolvePlugin(use, roots);
  } catch (err) {
    issues.push({ path: `${key}.use`, message: (err as Error).message });
    return undefined;
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
  } catch (err) {
    issues.push({ path: `${key}.use`, message: `plugin "${use}" failed to load from ${resolved}: ${(err as Error).message}` });
    return undefined;
  }
  const exported = (mod.default ?? mod) as unknown;
  let factory: PluginFactory<unknown>;
  if (typeof exported === 'function') factory = exported as PluginFactory<unknown>;
  else if (isPlugin(exported)) factory = () => exported;
  else {
    issues.push({ path: `${key}.use`, message: `"${use}" does not export a plugin (a default-exported factory or { name, apply })` });
    return undefined;
  }
  if (factory.kind && factory.kind !== kind && !(kind === 'plugin')) {
    issues.push({
      path: `${key}.use`,
      message: `"${use}" is ${kindLabel[factory.kind]} plugin; it cannot be used here (expected ${kindLabel[kind]} plugin)`,
    });
    return undefined;
  }
  let checked: unknown = options;
  if (factory.optionsSchema) {
    const r = factory.optionsSchema.safeParse(options);
    if (!r.success) {
      issues.push(...zodIssues(r.error, key));
      return undefined;
    }
    checked = r.data;
  }
  let made: ReturnType<PluginFactory<unknown>>;
  try {
    made = factory(options);
  } catch (err) {
    if (err instanceof ConfigError) {
      issues.push(...err.issues.map((i) => ({ path: i.path.startsWith(key) ? i.path : joinPath(key, i.path ? i.path.split('.').slice(1) : []), message: i.message })));
    } else {
      issues.push({ path: key, message: (err as Error).message });
    }
    return undefined;
  }
  const plugins = (Array.isArray(made) ? made : [made]).filter((p): p is Plugin => Boolean(p));
  for (const p of plugins) {
    if (!isPlugin(p)) {
      issues.push({ path: `${key}.use`, message: `"${use}" returned something that is not a plugin ({ name, apply })` });
      return undefined;
    }
  }
  const reads = kind === 'source' && factory.reads ? factory.reads(checked, { configDir: args.configDir }) : undefined;
  return { key, instance, kind: factory.kind ?? kind, use, resolved, options, settings, plugins, ...(reads ? { reads } : {}) };
}

function isPlugin(value: unknown): value is Plugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Plugin).name === 'string' &&
    typeof (value as Plugin).apply === 'function'
  );
}

/** Resolves `use:` from each root in turn: the rc file's folder, the working directory, then the tool's own. */
export function resolvePlugin(use: string, roots: readonly string[]): string {
  if (use.startsWith('.') || path.isAbsolute(use)) {
    const file = path.resolve(roots[0]!, use);
    if (!existsSync(file)) throw new Error(`plugin file ${file} does not exist`);
    return file;
  }
  const pkg = pluginPackageName(use);
  for (const root of roots) {
    try {
      return createRequire(path.join(root, 'noop.js')).resolve(pkg);
    } catch {
      // try the next root
    }
  }
  throw new BackupError('E_PLUGIN_NOT_FOUND', `plugin "${use}" is not installed: add it with \`npm install ${pkg}\``);
}

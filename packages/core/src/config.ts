import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, type ConfigIssue } from './errors.js';
import { expandHome } from './fs.js';
import type { Severity } from './checks.js';
import type { Compression } from './manifest.js';
import type { RepositoryFormat } from './repository-format.js';
import type { PluginKind } from './plugin.js';
import { DEFAULT_RETENTION, type RetentionPolicy } from './retention.js';
import { isEncryptionKey, lockedEncryptionEntry } from './deferred-secrets.js';
import { backupRootInSources } from './source-reads.js';
import { zodIssues } from './schema.js';
import { secrets as defaultSecrets, type SecretRegistry } from './secrets.js';
import { interpolate } from './config/interpolate.js';
import { loadPluginEntry, type PluginEntry, type PluginLoading } from './config/plugins.js';
import { readRcFile } from './config/rc-file.js';
import { exposureWarning, literalSecrets, registerSecrets } from './config/rc-secrets.js';
import { NAME, nameMessage, topLevelSchema, type PluginEntrySpec, type TopLevelConfig } from './config/schema.js';

export { parseInterval } from './duration.js';
export { pluginPackageName, resolvePlugin, type PluginEntry } from './config/plugins.js';
export { MODULE_NAME } from './config/rc-file.js';
export { literalSecrets } from './config/rc-secrets.js';

export interface ProfileConfig {
  name: string;
  schedule: string | undefined;
  sources: string[];
  retention: RetentionPolicy;
  restoreTest: boolean;
  /** One failed source fails the run, nothing committed (else the snapshot holds what succeeded). */
  failFast: boolean;
  /** How long the run's sources may take in all, in ms. */
  timeoutMs: number | undefined;
  /** `profiles.<name>.maxAge` as written; health.ts derives the default from the schedule. */
  maxAgeMs: number | undefined;
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
  /** `repository:`: the format of every repository, and restic's password (a secret). */
  repository?: { format: RepositoryFormat; password?: string } | undefined;
  plugins: PluginEntry[];
  checks: {
    maxAgeMs: number;
    maxStorageUsage: number;
    restoreTest?: { schedule?: string; from?: string; maxAgeMs?: number; severity?: Severity };
    threeTwoOne: Severity;
    offsiteLag: { maxAgeMs?: number; severity: Severity };
  };
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

/** Finds, reads, interpolates and checks the rc file, and loads every plugin it names. */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const secrets = options.secrets ?? defaultSecrets;
  const { file, dir, data } = await readConfigSource(options, cwd);
  const fail = (issues: ConfigIssue[]) => {
    if (issues.length) throw new ConfigError(issues, file);
  };

  const issues: ConfigIssue[] = [];
  const literal = literalSecrets(data, '');
  const raw = interpolate(data, '', options.env ?? process.env, issues, secrets) as Record<string, unknown>;
  const deferred = options.deferEncryptionSecrets ? issues.filter((i) => isEncryptionKey(i.path)) : [];
  issues.splice(0, issues.length, ...issues.filter((i) => !deferred.includes(i)));
  fail(issues);
  registerSecrets(raw, '', secrets);

  const parsed = topLevelSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(zodIssues(parsed.error, ''), file);
  const top = parsed.data;
  const retention = top.retention ?? DEFAULT_RETENTION;
  issues.push(...nameIssues(top));
  const profiles = resolveProfiles(top, retention, issues);
  issues.push(...crossChecks(top));
  fail(issues);

  const roots = [dir, cwd, ...(options.resolveFrom ?? []), path.dirname(new URL(import.meta.url).pathname)];
  const loaded = await loadPlugins(top, { roots, configDir: dir, issues }, deferred.length ? lockedEncryptionEntry(top.encryption!.use, deferred, file) : undefined);
  fail(issues);

  const backupRoot = path.resolve(dir, expandHome(top.backupRoot));
  fail(backupRootInSources(backupRoot, loaded.sources));
  fail(await backupRootNotAFolder(backupRoot));

  const exposure = await exposureWarning(file, literal, top.strictPermissions);
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
    ...loaded,
    integrity: top.integrity,
    repository: top.repository,
    checks: resolveChecks(top.checks),
    logLevel: top.log.level,
    strictPermissions: top.strictPermissions,
    warnings: exposure ? [exposure] : [],
    ...(deferred.length ? { encryptionSecretsMissing: deferred } : {}),
  };
}

/** backupRoot may be missing (the first run makes it), but what is there must be a folder. */
async function backupRootNotAFolder(backupRoot: string): Promise<ConfigIssue[]> {
  const st = await fsp.stat(backupRoot).catch(() => undefined);
  return st && !st.isDirectory() ? [{ path: 'backupRoot', message: `${backupRoot} exists and is not a folder` }] : [];
}

/** The rc file's content, and the folder its relative paths start from. */
async function readConfigSource(options: LoadConfigOptions, cwd: string): Promise<{ file: string | undefined; dir: string; data: Record<string, unknown> }> {
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
  return { file, dir, data: data as Record<string, unknown> };
}

/** The profiles (one named `default` with every source when the rc file has none); unknown sources and bad names are issues. */
function resolveProfiles(top: TopLevelConfig, retention: RetentionPolicy, issues: ConfigIssue[]): Record<string, ProfileConfig> {
  const sourceNames = Object.keys(top.sources);
  const profiles: Record<string, ProfileConfig> = {};
  for (const [name, p] of Object.entries(top.profiles ?? { default: { sources: '*' as const } })) {
    if (!NAME.test(name)) issues.push({ path: `profiles.${name}`, message: nameMessage });
    (p.sources === '*' ? [] : p.sources).forEach((s, i) => {
      if (!sourceNames.includes(s)) {
        issues.push({ path: `profiles.${name}.sources[${i}]`, message: `unknown source "${s}" (sources: ${sourceNames.join(', ')})` });
      }
    });
    profiles[name] = {
      name,
      schedule: 'schedule' in p ? p.schedule : undefined,
      sources: p.sources === '*' ? sourceNames : p.sources,
      retention: ('retention' in p && p.retention) || retention,
      restoreTest: ('restoreTest' in p && p.restoreTest) || false,
      failFast: ('failFast' in p && p.failFast) || false,
      timeoutMs: 'timeout' in p ? p.timeout : undefined,
      maxAgeMs: 'maxAge' in p ? p.maxAge : undefined,
    };
  }
  return profiles;
}

/** The names of sources, destinations and notifiers that are not plain names. */
function nameIssues(top: TopLevelConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [group, record] of [['sources', top.sources], ['destinations', top.destinations], ['notify', top.notify]] as const) {
    for (const name of Object.keys(record)) if (!NAME.test(name)) issues.push({ path: `${group}.${name}`, message: nameMessage });
  }
  return issues;
}

/** Checks across keys: integrity beside encryption, the restore test's destination. */
function crossChecks(top: TopLevelConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (top.integrity && top.encryption) {
    issues.push({
      path: 'integrity',
      message:
        'not used with encryption: the encryption plugin authenticates manifests (gpg: an HMAC keyed from the passphrase, or with recipients a signature by signingKey); remove integrity',
    });
  }
  issues.push(...repositoryIssues(top));
  const restoreFrom = top.checks.restoreTest?.from;
  if (restoreFrom && !(restoreFrom in top.destinations)) {
    issues.push({ path: 'checks.restoreTest.from', message: `unknown destination "${restoreFrom}"` });
  }
  return issues;
}

/** `format: restic` needs a password, encrypts and authenticates itself, and is not replicated yet. */
function repositoryIssues(top: TopLevelConfig): ConfigIssue[] {
  if (top.repository.format !== 'restic') return [];
  const issues: ConfigIssue[] = [];
  if (!top.repository.password) {
    issues.push({ path: 'repository.password', message: 'format restic needs a password (give it as ${VAR}); it encrypts the repository' });
  }
  for (const key of ['encryption', 'integrity'] as const) {
    if (top[key]) issues.push({ path: key, message: `not used with repository.format restic: restic's format encrypts and authenticates itself; remove ${key}` });
  }
  if (Object.keys(top.destinations).length) {
    issues.push({
      path: 'destinations',
      message: 'not supported with repository.format restic yet: replicating a restic repository to destinations is the next step; remove destinations or use format tar',
    });
  }
  return issues;
}

/** Loads every plugin the rc file names; problems go to `loading.issues`. */
async function loadPlugins(
  top: TopLevelConfig,
  loading: PluginLoading,
  /** In place of the encryption plugin when its secrets were deferred (deferred-secrets.ts). */
  lockedEncryption?: PluginEntry,
): Promise<Pick<ResolvedConfig, 'sources' | 'destinations' | 'notifiers' | 'encryption' | 'plugins'>> {
  const load = (key: string, instance: string, kind: PluginKind, entry: PluginEntrySpec) => loadPluginEntry(key, instance, kind, entry, loading);
  const group = (name: string, record: Record<string, PluginEntrySpec>, kind: PluginKind) =>
    Promise.all(Object.entries(record).map(([n, e]) => load(`${name}.${n}`, n, kind, e)));
  const sources = await group('sources', top.sources, 'source');
  const destinations = await group('destinations', top.destinations, 'destination');
  const notifiers = await group('notify', top.notify, 'notifier');
  const encryption = lockedEncryption ?? (top.encryption ? await load('encryption', 'encryption', 'encryption', top.encryption) : undefined);
  const plugins: (PluginEntry | undefined)[] = [];
  for (const [i, e] of top.plugins.entries()) {
    if (e) plugins.push(await load(`plugins[${i}]`, `plugins[${i}]`, 'plugin', e));
  }
  // With an issue pushed, loadConfig throws before these are used: undefined entries never leave.
  return {
    sources: sources as PluginEntry[],
    destinations: destinations as PluginEntry[],
    notifiers: notifiers as PluginEntry[],
    encryption,
    plugins: plugins as PluginEntry[],
  };
}

function resolveChecks(checks: TopLevelConfig['checks']): ResolvedConfig['checks'] {
  const restoreTest = checks.restoreTest;
  return {
    maxAgeMs: checks.maxAge,
    maxStorageUsage: checks.maxStorageUsage,
    ...(restoreTest
      ? {
          restoreTest: {
            ...(restoreTest.schedule ? { schedule: restoreTest.schedule } : {}),
            ...(restoreTest.from ? { from: restoreTest.from } : {}),
            ...(restoreTest.maxAge ? { maxAgeMs: restoreTest.maxAge } : {}),
            ...(restoreTest.severity ? { severity: restoreTest.severity } : {}),
          },
        }
      : {}),
    threeTwoOne: checks.threeTwoOne,
    offsiteLag: { ...(checks.offsiteLag?.maxAge ? { maxAgeMs: checks.offsiteLag.maxAge } : {}), severity: checks.offsiteLag?.severity ?? 'warning' },
  };
}

import { loadConfig, type LoadConfigOptions, type ProfileConfig, type ResolvedConfig } from './config.js';
import { createContext, profileNamed, type EngineContext } from './context.js';
import type { RegisteredDestination } from './hooks.js';
import { BackupError } from './errors.js';
import type { HistoryRecord } from './history.js';
import { createHooks, tapOnly, wrapTapErrors } from './hooks.js';
import { builtinPlugins } from './integrity.js';
import { createLogger, type Logger } from './log.js';
import { failedSources, manifestBytes } from './manifest.js';
import type { Notification, NotificationResult } from './notify.js';
import type { PluginContext } from './plugin.js';
import { noProgress, type Progress } from './progress.js';
import { retryingDestination } from './retry.js';
import type { ForgetResult, PruneResult } from './pruner.js';
import type { SnapshotRepository } from './repository-format.js';
import type { HistoryReport } from './history-report.js';
import type { LsOptions, LsResult } from './ls-command.js';
import type { RecoveryResult } from './recover.js';
import type { RestoreOptions, RestoreResult } from './restore-command.js';
import type { RestoreTestResult } from './restore-test.js';
import type { RunReport } from './report.js';
import type { RunOptions } from './run/backup-run.js';
import type { StatusResult } from './health.js';
import { secrets as defaultSecrets, type SecretRegistry } from './secrets.js';
import type { VerifyOptions, VerifyResult } from './verify.js';

export type { CheckResult } from './checks.js';
export type { StatusResult } from './health.js';
export type { RestoreOptions, RestoreResult } from './restore-command.js';
export type { LsEntry, LsOptions, LsResult } from './ls-command.js';
export type { ArtifactRestoreTest, RestoreTestResult } from './restore-test.js';
export type { RunOptions } from './run/backup-run.js';
export type { ArtifactVerification, SnapshotVerification, VerifyOptions, VerifyResult } from './verify.js';

export interface EngineOptions {
  logger?: Logger;
  progress?: Progress;
  secrets?: SecretRegistry;
  /**
   * The engine's clock: run times, snapshot ids, freshness, throttle windows. Default: the system
   * clock. The CLI shifts it with SUTAZAI_BACKUP_NOW, for tests that script days of runs.
   */
  now?: () => Date;
}

export interface SnapshotSummary {
  id: string;
  profile: string;
  host: string;
  createdAt: string;
  bytes: number;
  artifacts: { source: string; file: string; bytes: number }[];
  /** The sources a partial snapshot lacks, with why they failed (empty for a complete snapshot). */
  failedSources: { source: string; code: string; message: string }[];
}

/**
 * The engine: owns the hooks, applies the plugins, and hands each command to its module (the run
 * pipeline in run/, verify.ts, restore-command.ts, restore-test.ts, prune-command.ts, health.ts,
 * notifier.ts) with one shared EngineContext. A command's module is loaded when it first runs.
 * Embed it with `await Engine.load({ configPath })`, then `run()`, `list()`, `verify()`...
 */
export class Engine {
  readonly config: ResolvedConfig;
  readonly logger: Logger;
  readonly secrets: SecretRegistry;
  readonly now: () => Date;
  readonly #ctx: EngineContext;
  #applied = false;

  static async load(options: LoadConfigOptions & EngineOptions = {}): Promise<Engine> {
    const config = await loadConfig(options);
    const engine = new Engine(config, options);
    await engine.init();
    return engine;
  }

  constructor(config: ResolvedConfig, options: EngineOptions = {}) {
    this.config = config;
    this.secrets = options.secrets ?? defaultSecrets;
    this.logger = options.logger ?? createLogger({ ...(config.logLevel ? { level: config.logLevel } : {}), secrets: this.secrets });
    this.now = options.now ?? (() => new Date());
    const hooks = createHooks();
    wrapTapErrors(hooks);
    this.#ctx = createContext({ config, hooks, logger: this.logger, secrets: this.secrets, progress: options.progress ?? noProgress, now: this.now });
  }

  get stateDir(): string {
    return this.#ctx.stateDir;
  }

  /** Applies every plugin and collects the destinations. Called by `load`. */
  async init(): Promise<void> {
    if (this.#applied) return;
    this.#applied = true;
    const { hooks, repositories } = this.#ctx;
    const view = tapOnly(hooks);
    const entries = [...this.config.sources, ...this.config.destinations, ...this.config.notifiers, ...(this.config.encryption ? [this.config.encryption] : []), ...this.config.plugins, ...builtinPlugins(this.config)];
    for (const entry of entries) {
      const ctx: PluginContext = {
        instance: entry.instance,
        key: entry.key,
        kind: entry.kind,
        configFile: this.config.file,
        configDir: this.config.dir,
        backupRoot: this.config.backupRoot,
        host: this.config.host,
        logger: this.logger.child({ plugin: entry.key }),
        secrets: this.secrets,
        settings: entry.settings,
      };
      for (const plugin of entry.plugins) {
        try {
          await plugin.apply(view, ctx);
        } catch (err) {
          throw new BackupError('E_PLUGIN', `${entry.key}: plugin ${plugin.name} failed to start: ${(err as Error).message}`, {
            cause: err,
            plugin: entry.key,
          });
        }
      }
    }
    // Every operation on a destination (put, get, list, stat, delete) is retried on transient errors.
    hooks.destinations.call({
      add: (d) =>
        repositories.add({
          ...d,
          destination: retryingDestination(d.destination, { name: `destinations.${d.name}`, logger: this.logger.child({ plugin: `destinations.${d.name}` }) }),
        }),
    });
  }

  /** backupRoot's repository. */
  get repository(): SnapshotRepository {
    return this.#ctx.repositories.local;
  }

  get destinations(): ReadonlyMap<string, RegisteredDestination> {
    return this.#ctx.repositories.destinations;
  }

  /** The repository at backupRoot, or at the named destination (`--from`). */
  repositoryFor(from?: string): SnapshotRepository {
    return this.#ctx.repositories.at(from);
  }

  profile(name?: string): ProfileConfig {
    return profileNamed(this.config, name);
  }

  /** The run history (runs, verifications, restore tests, prunes), oldest first. */
  history(): Promise<HistoryRecord[]> {
    return this.#ctx.history.read();
  }

  async close(): Promise<void> {
    await Promise.all([...this.destinations.values()].map((d) => d.destination.close?.().catch(() => {})));
    await this.#ctx.hooks.close.promise().catch((err) => this.logger.warn(`closing plugins failed: ${(err as Error).message}`));
  }

  /** Backs up a profile: collect → archive → verify → commit → replicate → prune → restoreTest → notify. */
  async run(options: RunOptions = {}): Promise<RunReport> {
    const { runBackup } = await import('./run/run.js');
    return runBackup(this.#ctx, options);
  }

  async verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    const { verifySnapshots } = await import('./verify.js');
    return verifySnapshots(this.#ctx, options);
  }

  async list(options: { from?: string } = {}): Promise<SnapshotSummary[]> {
    const repo = this.repositoryFor(options.from);
    const { manifests, broken } = await repo.manifests();
    for (const b of broken) this.logger.warn(`snapshot ${b.id}: ${b.error.message}`);
    return manifests.map((m) => ({
      id: m.id,
      profile: m.profile,
      host: m.host,
      createdAt: m.startedAt,
      bytes: manifestBytes(m),
      artifacts: m.artifacts.map((a) => ({ source: a.source, file: a.file, bytes: a.bytes })),
      failedSources: failedSources(m).map((f) => ({ source: f.source, code: f.code, message: f.message })),
    }));
  }

  async restore(options: RestoreOptions): Promise<RestoreResult> {
    const { restoreSnapshot } = await import('./restore-command.js');
    return restoreSnapshot(this.#ctx, options);
  }

  /** The entries inside a snapshot (`ls`), read and checked, never extracted. */
  async ls(options: LsOptions): Promise<LsResult> {
    const { listEntries } = await import('./ls-command.js');
    return listEntries(this.#ctx, options);
  }

  /** `report`: the run history of the last `days` days, per profile, per destination, and the restore tests. */
  async report(options: { days?: number } = {}): Promise<HistoryReport> {
    const { historyReport } = await import('./history-report.js');
    return historyReport(this.#ctx, options);
  }

  /** `recover --from DEST`: every source's newest snapshot, in the recovery order, or `plan` it. */
  async recover(options: { from: string; to?: string; plan?: boolean; force?: boolean }): Promise<RecoveryResult> {
    const { recover } = await import('./recover.js');
    return recover(this.#ctx, options);
  }

  /** Restores a snapshot into a private sandbox and checks it: generic checks, then each source's own. */
  async restoreTest(options: { snapshot?: string; from?: string } = {}): Promise<RestoreTestResult> {
    const { restoreTest } = await import('./restore-test.js');
    return restoreTest(this.#ctx, options);
  }

  async prune(options: { dryRun?: boolean; from?: string } = {}): Promise<PruneResult[]> {
    const { prune } = await import('./prune-command.js');
    return prune(this.#ctx, options);
  }

  /** Deletes one snapshot from one repository (backupRoot unless `from`), under the run lock. */
  async forget(options: { snapshot: string; from?: string }): Promise<ForgetResult> {
    const { forget } = await import('./prune-command.js');
    return forget(this.#ctx, options);
  }

  /** Health and 3-2-1; with `notify`, alerts on each condition that began or cleared. */
  async status(options: { notify?: boolean } = {}): Promise<StatusResult> {
    const { status } = await import('./health.js');
    return status(this.#ctx, options);
  }

  /**
   * Hands a notification to every channel (or only the named ones) whose policy (`on`,
   * `throttle`) admits it. Every channel runs even when another fails; a failure is logged and
   * returned, never thrown.
   */
  async notify(notification: Notification, logger: Logger = this.logger, only?: ReadonlySet<string>): Promise<NotificationResult[]> {
    const { notify } = await import('./notifier.js');
    return notify(this.#ctx, notification, logger, only);
  }
}

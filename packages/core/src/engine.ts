import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ownFolder } from './backup-root.js';
import { loadConfig, type LoadConfigOptions, type ProfileConfig, type ResolvedConfig } from './config.js';
import { crashPoint } from './crash-point.js';
import { LocalDestination, type Destination, type DestinationTraits } from './destination.js';
import { BackupError, isBackupError } from './errors.js';
import { DIR_MODE, ensureDir, fsyncDir, writeFileAtomic } from './fs.js';
import { RunHistory, type HistoryRecord } from './history.js';
import {
  createHooks,
  tapOnly,
  wrapTapErrors,
  type ArchiveTransform,
  type ArtifactSpec,
  type Hooks,
  type ManifestPurpose,
  type RegisteredDestination,
  type RunContext,
} from './hooks.js';
import { authenticationCheck, builtinPlugins } from './integrity.js';
import { RunLock } from './lock.js';
import { createLogger, type Logger } from './log.js';
import { MANIFEST_FILE, MANIFEST_FORMAT_VERSION, manifestBytes, serializeManifest, type ArtifactRecord, type Compression, type Manifest } from './manifest.js';
import { writeArtifact, type WriteArtifactOptions } from './pipeline/archive.js';
import { compressionExtension, isStreamOnly } from './pipeline/compression.js';
import { looksIncompressible } from './pipeline/encoder.js';
import { openSourceOutput, type SourceOutput } from './pipeline/source-stream.js';
import { zstdCodec } from './zstd/index.js';
import { tarPieces, type TarPiece } from './pipeline/tar-pack.js';
import { checkStoredScan, FollowingVerifier, verifyingTarScanner, type StoredScanOutcome } from './pipeline/follow-verify.js';
import type { TreeStats } from './pipeline/tar-extract.js';
import type { PluginContext } from './plugin.js';
import {
  alertKey,
  channelPolicy,
  decideDelivery,
  formatAge,
  healthNotification,
  NotificationStateStore,
  outcomeClass,
  runEvent,
  runNotification,
  type ConditionState,
  type HealthChange,
  type Notification,
  type NotificationResult,
  type NotifyEvent,
  type OutcomeClass,
} from './notify.js';
import { noProgress, type Progress } from './progress.js';
import { ArtifactReader, decodeError, Scratch } from './reader.js';
import { copySnapshot, DEFAULT_RETRY, retryingDestination } from './replicate.js';
import { newReport, reportError, rootFailures, type DestinationResult, type RunReport, type StageName } from './report.js';
import { Repository, mapLimit } from './repository.js';
import { restoreToDir, type RestoredArtifact } from './restore.js';
import { decideRetention, foreignFolders, forgetSnapshot, policyFor, pruneRecord, pruneRepository, type ForgetResult, type PruneResult } from './pruner.js';
import type { RetentionPolicy } from './retention.js';
import { secrets as defaultSecrets, type SecretRegistry } from './secrets.js';
import { StagingArea } from './staging.js';
import { makeSnapshotId, parseSnapshotId } from './snapshot-id.js';
import { artifactFailureKind, manifestFailureKind, suspectSnapshots, verificationCheck, type SuspectSnapshot, type VerifyFailure } from './suspects.js';
import { CORE_VERSION, TOOL_NAME } from './version.js';

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

export interface RunOptions {
  profile?: string;
  /** Back up only these sources of the profile. */
  only?: string[];
  dryRun?: boolean;
  /** One artifact at a time. */
  sequential?: boolean;
  signal?: AbortSignal;
}

export interface SnapshotSummary {
  id: string;
  profile: string;
  host: string;
  createdAt: string;
  bytes: number;
  artifacts: { source: string; file: string; bytes: number }[];
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** A status check that passes but warns (manifests that nothing authenticates). */
  warning?: boolean;
  detail?: string;
}

export interface ArtifactVerification {
  snapshot: string;
  source: string;
  file: string;
  ok: boolean;
  error?: string;
  /** Why it failed (a diagnosis for `status`; no failure alone makes retention delete). */
  failure?: VerifyFailure['kind'];
  checks: CheckResult[];
}

export interface VerifyResult {
  repository: string;
  ok: boolean;
  snapshots: { id: string; ok: boolean; error?: string; failure?: VerifyFailure; artifacts: ArtifactVerification[] }[];
}

export interface RestoreOptions {
  snapshot: string;
  /** Restore under this folder (`DIR/<source>/`). */
  to?: string;
  /** Restore a database source into this server (`--into URL`). */
  into?: string;
  sources?: string[];
  database?: string;
  clean?: boolean;
  force?: boolean;
  preserveOwner?: boolean;
  from?: string;
}

export interface RestoreResult {
  snapshot: string;
  repository: string;
  restored: RestoredArtifact[] | { source: string; file: string; into: string }[];
}

export interface RestoreTestResult {
  snapshot: string;
  repository: string;
  ok: boolean;
  artifacts: { source: string; file: string; ok: boolean; error?: string; checks: CheckResult[] }[];
}

export interface StatusResult {
  healthy: boolean;
  checks: CheckResult[];
  strategy: { copies: number; media: number; offsite: boolean; compliant: boolean };
  lastRun: HistoryRecord | null;
  snapshots: number;
  latest: string | null;
  /** Snapshots whose latest verification failed, at each repository: kept, and deleted only by `forget`. */
  suspects: SuspectSnapshot[];
  /** Folders named like snapshots without manifest or marker (backupRoot now, destinations as of their last prune): left alone. */
  foreign: { repository: string; id: string }[];
  /** With `notify`: the health conditions that began or cleared, and what each channel did. */
  changes?: HealthChange[];
  notifications?: NotificationResult[];
}

/** The checks of `status` that `status --notify` alerts on when they begin and when they clear. */
export const HEALTH_CONDITIONS = ['freshness', 'storage', 'verification', 'replication', 'restore-test'] as const;
/** A condition that is a warning rather than a failure (a channel's `on:` tells them apart). */
const warningConditions: ReadonlySet<string> = new Set(['storage']);

interface PendingArtifact {
  source: string;
  plugin: string;
  spec: ArtifactSpec;
}

const BACKUP_ROOT = 'backupRoot';
/**
 * Artifacts are verified while they are written once this much is written; smaller ones after
 * (starting the verifying thread costs about 0.1 s).
 */
const FOLLOW_FROM = 16 * 1024 * 1024;

/**
 * The engine: owns the hooks, applies the plugins, and runs each command's lifecycle.
 * Embed it with `await Engine.load({ configPath })`, then `run()`, `list()`, `verify()`...
 */
export class Engine {
  readonly config: ResolvedConfig;
  readonly logger: Logger;
  readonly secrets: SecretRegistry;
  readonly #hooks: Hooks = createHooks();
  readonly #progress: Progress;
  readonly #destinations = new Map<string, RegisteredDestination>();
  readonly #repository: Repository;
  readonly #history: RunHistory;
  readonly #notifyState: NotificationStateStore;
  readonly now: () => Date;
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
    this.#progress = options.progress ?? noProgress;
    this.#repository = new Repository(new LocalDestination(config.backupRoot), BACKUP_ROOT);
    this.#history = new RunHistory(this.stateDir);
    this.#notifyState = new NotificationStateStore(this.stateDir);
    this.now = options.now ?? (() => new Date());
    wrapTapErrors(this.#hooks);
  }

  get stateDir(): string {
    return path.join(this.config.backupRoot, 'state');
  }

  /** Applies every plugin and collects the destinations. Called by `load`. */
  async init(): Promise<void> {
    if (this.#applied) return;
    this.#applied = true;
    const view = tapOnly(this.#hooks);
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
    this.#hooks.destinations.call({
      add: (d) => {
        if (this.#destinations.has(d.name)) throw new BackupError('E_CONFIG', `destination ${d.name} is registered twice`);
        this.#destinations.set(d.name, { ...d, destination: retryingDestination(d.destination, { name: `destinations.${d.name}`, logger: this.logger.child({ plugin: `destinations.${d.name}` }) }) });
      },
    });
  }

  get repository(): Repository {
    return this.#repository;
  }

  get destinations(): ReadonlyMap<string, RegisteredDestination> {
    return this.#destinations;
  }

  /** The repository at backupRoot, or at the named destination (`--from`). */
  repositoryFor(from?: string): Repository {
    if (!from || from === BACKUP_ROOT) return this.#repository;
    const d = this.#destinations.get(from);
    if (!d) {
      const names = [...this.#destinations.keys()];
      throw new BackupError('E_USAGE', `unknown destination "${from}"${names.length ? ` (destinations: ${names.join(', ')})` : ' (none is configured)'}`);
    }
    return new Repository(d.destination, `destinations.${d.name}`);
  }

  profile(name?: string): ProfileConfig {
    const names = Object.keys(this.config.profiles);
    if (name) {
      const p = this.config.profiles[name];
      if (!p) throw new BackupError('E_USAGE', `unknown profile "${name}" (profiles: ${names.join(', ')})`);
      return p;
    }
    if (names.length === 1) return this.config.profiles[names[0]!]!;
    throw new BackupError('E_USAGE', `choose a profile with --profile (profiles: ${names.join(', ')})`);
  }

  /** The run history (runs, verifications, restore tests, prunes), oldest first. */
  history(): Promise<HistoryRecord[]> {
    return this.#history.read();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#destinations.values()].map((d) => d.destination.close?.().catch(() => {})));
    await this.#hooks.close.promise().catch((err) => this.logger.warn(`closing plugins failed: ${(err as Error).message}`));
  }

  /** Reads a manifest to verify, restore or restore-test from, and lets plugins authenticate it. */
  private async readCheckedManifest(repo: Repository, id: string, purpose: ManifestPurpose): Promise<Manifest> {
    const manifest = await repo.readManifest(id);
    await this.#hooks.checkManifest.promise({ repository: repo, manifest, purpose, logger: this.logger });
    return manifest;
  }

  // ---- run ----------------------------------------------------------------------------------

  async run(options: RunOptions = {}): Promise<RunReport> {
    const profile = this.profile(options.profile);
    let sources = profile.sources;
    if (options.only?.length) {
      for (const s of options.only) {
        if (!profile.sources.includes(s)) {
          throw new BackupError('E_USAGE', `--only ${s}: not a source of profile ${profile.name} (its sources: ${profile.sources.join(', ')})`);
        }
      }
      sources = profile.sources.filter((s) => options.only!.includes(s));
    }
    const startedAt = this.now();
    const id = makeSnapshotId(startedAt, profile.name);
    const report = newReport(profile.name, this.config.host, startedAt, Boolean(options.dryRun));
    const logger = this.logger.child({ snapshot: id });
    // zstd's backend is chosen here, not at start-up; without one, this says how to get one.
    if (this.config.compression === 'zstd') logger.debug(`zstd through ${zstdCodec().backend}`);
    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const run: RunContext = {
      id,
      profile: profile.name,
      host: this.config.host,
      startedAt,
      backupRoot: this.config.backupRoot,
      dryRun: Boolean(options.dryRun),
      sources,
      logger,
      signal: abort.signal,
      report,
    };

    const lock = new RunLock(this.stateDir);
    if (!options.dryRun) {
      await lock.acquire(`run --profile ${profile.name}`);
    }
    const staging = new Repository(new LocalDestination(path.join(this.config.backupRoot, 'staging')), 'staging');
    const stagingArea = new StagingArea(this.config.backupRoot);
    const stagingDir = path.join(stagingArea.dir, 'snapshots', id);
    const workDir = path.join(stagingArea.dir, `work-${id}`);
    let staged = false;
    const scratch = new Scratch(this.config.backupRoot);
    // Artifacts verified while they were written: what their reading found.
    const followed = new Map<string, Promise<StoredScanOutcome>>();
    const followers: FollowingVerifier[] = [];
    let committed = false;
    logger.info(`run started: profile ${profile.name}, sources ${sources.join(', ')}`);
    try {
      if (!options.dryRun) await this.cleanStaging(stagingArea, report, logger);
      await this.#hooks.beforeRun.promise(run);

      const pending: PendingArtifact[] = [];
      await this.stage(report, 'collect', async () => {
        await this.#hooks.collect.promise({
          run,
          addArtifact: (source, plugin, spec) => pending.push({ source, plugin, spec }),
        });
        for (const s of sources) {
          if (!pending.some((p) => p.source === s)) report.warnings.push(`source ${s} produced no artifact`);
        }
      });
      if (options.dryRun) {
        for (const p of pending) logger.info(`would archive ${p.spec.name} (${p.spec.type})`, { plugin: `sources.${p.source}` });
        return report;
      }

      staged = true;
      await stagingArea.create(`snapshots/${id}`, 'run');
      await stagingArea.create(`work-${id}`, 'run');
      const records: ArtifactRecord[] = [];
      await this.stage(report, 'archive', async () => {
        const names = new Set<string>();
        for (const p of pending) {
          if (names.has(p.spec.name)) throw new BackupError('E_SOURCE', `two artifacts are named ${p.spec.name}`, { plugin: `sources.${p.source}` });
          names.add(p.spec.name);
        }
        const limit = options.sequential ? 1 : this.config.concurrency;
        const outcomes = await mapLimit(pending, limit, async (p) => {
          try {
            return { record: await this.archiveArtifact(run, p, stagingDir, workDir, { followed, followers }) };
          } catch (err) {
            const error = isBackupError(err) ? err : new BackupError('E_ARCHIVE', (err as Error).message, { cause: err });
            error.plugin ??= `sources.${p.source}`;
            error.stage ??= 'archive';
            abort.abort(error);
            return { error };
          }
        });
        // The first failure aborts the others; report each root cause once.
        const roots = rootFailures(outcomes.flatMap((o) => (o.error ? [o.error] : [])), abort.signal.reason);
        for (const e of roots.slice(1)) this.recordFailure(report, 'archive', e);
        if (roots.length) throw roots[0]!;
        records.push(...outcomes.map((o) => o.record!));
      });

      const manifest: Manifest = {
        formatVersion: MANIFEST_FORMAT_VERSION,
        id,
        profile: profile.name,
        host: this.config.host,
        startedAt: startedAt.toISOString(),
        finishedAt: '',
        tool: { name: TOOL_NAME, version: CORE_VERSION },
        artifacts: records,
      };

      await this.stage(report, 'verify', async () => {
        const results = await mapLimit(records, options.sequential ? 1 : this.config.concurrency, (artifact) =>
          this.verifyArtifact(new ArtifactReader({ hooks: this.#hooks, repository: staging, manifest, artifact, logger, scratch }), followed.get(artifact.file)),
        );
        const bad = results.filter((r) => !r.ok);
        if (bad.length) {
          throw new BackupError('E_VERIFY', `verification failed: ${bad.map((b) => `${b.file}: ${b.error ?? failedChecks(b)}`).join('; ')}`);
        }
      });

      await this.stage(report, 'commit', async () => {
        manifest.finishedAt = this.now().toISOString();
        await this.#hooks.commit.promise({ run, manifest });
        await writeFileAtomic(path.join(stagingDir, MANIFEST_FILE), serializeManifest(manifest));
        crashPoint('after-manifest');
        const finalDir = path.join(await ownFolder(this.config.backupRoot, 'snapshots'), id);
        await fsp.rename(stagingDir, finalDir);
        await fsyncDir(path.dirname(finalDir));
        crashPoint('after-rename');
        committed = true;
        await stagingArea.forget(stagingDir);
        report.snapshot = id;
        logger.info(`snapshot ${id} committed: ${records.length} artifact(s), ${manifestBytes(manifest)} bytes`);
      });

      if (this.#destinations.size) {
        await this.stage(report, 'replicate', async () => {
          const failures = await this.replicateAll(run, logger);
          await this.#hooks.replicate.promise({ run, source: this.#repository, manifest });
          if (failures.length) throw new AggregateError(failures, `replication failed at ${failures.map((f) => f.plugin).join(', ')}`);
        }).catch((err) => {
          // One error per failed destination, each naming it; the others' copies stand.
          for (const e of err instanceof AggregateError ? err.errors : [err]) this.recordFailure(report, 'replicate', e);
        });
      }

      await this.stage(report, 'prune', async () => {
        const failed = new Set(report.destinations.filter((r) => r.status === 'failed').map((r) => r.name));
        for (const t of this.pruneTargets().filter((t) => !failed.has(t.name))) await this.pruneOne(t.repo, t.retention, false, logger);
        await this.#hooks.prune.promise({ run, dryRun: false, logger });
      }).catch((err) => this.recordFailure(report, 'prune', err));

      if (profile.restoreTest) {
        await this.stage(report, 'restoreTest', async () => {
          const result = await this.restoreTest({ snapshot: id });
          if (!result.ok) throw new BackupError('E_RESTORE_TEST', `restore test of ${id} failed`);
        }).catch((err) => this.recordFailure(report, 'restoreTest', err));
      }
      return report;
    } catch (err) {
      this.recordFailure(report, undefined, err);
      const error = isBackupError(err) ? err : new BackupError('E_INTERNAL', (err as Error).message, { cause: err });
      await this.#hooks.runFailed.promise(run, error).catch((e) => logger.warn(`runFailed hook failed: ${(e as Error).message}`));
      return report;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      this.#progress.clear();
      await Promise.all(followers.map((f) => f.abort()));
      if (staged && !committed) await stagingArea.discard(stagingDir).catch(() => {});
      if (staged) await stagingArea.discard(workDir).catch(() => {});
      await scratch.dispose();
      await this.finishRun(report, run, startedAt, options.dryRun ?? false);
      await lock.release().catch(() => {});
    }
  }

  private async finishRun(report: RunReport, run: RunContext, startedAt: Date, dryRun: boolean): Promise<void> {
    const finished = this.now();
    report.finishedAt = finished.toISOString();
    report.durationMs = Math.max(0, finished.getTime() - startedAt.getTime());
    if (report.errors.length) report.status = 'failed';
    if (!dryRun) {
      const previous = await this.previousOutcome(report.profile).catch((err) => {
        run.logger.warn(`could not read the notification state in ${this.stateDir}: ${(err as Error).message}`);
        return undefined;
      });
      report.event = runEvent(report, previous);
    }
    // The log is always a channel: one structured line per run.
    const line = `run ${report.status}: profile ${report.profile}${report.snapshot ? `, snapshot ${report.snapshot}` : ', no snapshot committed'}`;
    const fields = { event: report.event ?? undefined, profile: report.profile, snapshot: report.snapshot, durationMs: report.durationMs };
    if (report.status === 'success') run.logger.info(line, { ...fields, ...(report.warnings.length ? { warnings: report.warnings } : {}) });
    else run.logger.error(line, { ...fields, errors: report.errors.map((e) => `${e.plugin ? `${e.plugin} ` : ''}(${e.stage}) ${e.message}`) });
    report.logTail = run.logger.tail(30);
    if (!dryRun && report.event) {
      const t0 = Date.now();
      const event = report.event;
      try {
        const outcome = outcomeClass(event, report.warnings.length);
        await this.#notifyState.update((state) => {
          const prev = state.runs[report.profile];
          state.runs[report.profile] = { outcome, since: prev?.outcome === outcome ? prev.since : report.finishedAt, at: report.finishedAt };
          // A new episode: every channel's throttle for this profile starts over.
          if (prev?.outcome !== outcome) for (const sent of Object.values(state.channels)) delete sent[`run:${report.profile}`];
        });
        report.notifications = await this.notify(runNotification(this.secrets.redactDeep(report), event, finished), run.logger);
        const failed = report.notifications.some((n) => n.status === 'failed');
        report.stages.notify = { status: failed ? 'failed' : 'ok', durationMs: Date.now() - t0 };
      } catch (err) {
        report.stages.notify = { status: 'failed', durationMs: Date.now() - t0 };
        const message = this.secrets.redact((err as Error).message);
        run.logger.warn(`notify stage failed: ${message}`);
        report.warnings.push(`notify: ${message}`);
      }
    }
    if (!dryRun) {
      await this.#history
        .append({
          kind: 'run',
          status: report.status,
          startedAt: report.startedAt,
          finishedAt: report.finishedAt,
          profile: report.profile,
          snapshot: report.snapshot,
          repository: BACKUP_ROOT,
          bytes: report.artifacts.reduce((s, a) => s + a.bytes, 0),
          errors: report.errors,
          destinations: report.destinations.map((d) => ({ name: d.name, status: d.status, ...(d.error ? { error: d.error } : {}) })),
          ...(report.event ? { event: report.event } : {}),
          notifications: report.notifications.map((n) => ({ channel: n.channel, status: n.status })),
        })
        .catch((err) => run.logger.warn(`could not record the run in ${this.stateDir}: ${(err as Error).message}`));
    }
    await this.#hooks.done.promise(report).catch((err) => run.logger.warn(`done hook failed: ${(err as Error).message}`));
  }

  /** The outcome of the profile's previous run: from the notification state, else the history. */
  private async previousOutcome(profile: string): Promise<OutcomeClass | undefined> {
    const state = await this.#notifyState.read();
    if (state.runs[profile]) return state.runs[profile].outcome;
    const last = await this.#history.last('run', (r) => r.profile === profile);
    return last ? (last.status === 'failed' ? 'failure' : 'success') : undefined;
  }

  // ---- notify ------------------------------------------------------------------------------

  /**
   * Hands a notification to every channel (or only the named ones) whose policy (`on`,
   * `throttle`) admits it. Every channel runs even when another fails; a failure is logged and
   * returned, never thrown.
   */
  async notify(notification: Notification, logger: Logger = this.logger, only?: ReadonlySet<string>): Promise<NotificationResult[]> {
    const key = alertKey(notification);
    const event: NotifyEvent = notification.event;
    const now = this.now();
    const state = await this.#notifyState.read();
    const results = new Map<string, NotificationResult>();
    const admitted = new Set<string>();
    for (const entry of this.config.notifiers) {
      if (only && !only.has(entry.key)) continue;
      const decision = decideDelivery(channelPolicy(entry.settings), event, state.channels[entry.key]?.[key], now);
      const plugin = entry.plugins[0]?.name ?? entry.use;
      if (decision.send) admitted.add(entry.key);
      results.set(entry.key, {
        channel: entry.key,
        plugin,
        event,
        status: 'skipped',
        reason: decision.send ? 'the plugin does not tap notify' : decision.reason,
      });
    }
    const channels = new Set(results.keys());
    const attempts = new Map<string, number>();
    await this.#hooks.notify
      .promise({
        notification,
        report: notification.kind === 'run' ? notification.report : undefined,
        logger,
        // Taps of hook-only plugins are not channels: they run for every notification, not for resends.
        admits: (tap) => (channels.has(tap) ? admitted.has(tap) : !only),
        recordAttempts: (channel, n) => attempts.set(channel, n),
        settle: (tap, outcome) => {
          const previous = results.get(tap);
          if (previous?.status === 'failed') return;
          const tries = attempts.get(tap);
          const common = { channel: tap, plugin: previous?.plugin ?? tap, event, ...(tries ? { attempts: tries } : {}), durationMs: outcome.durationMs };
          if (outcome.error) results.set(tap, { ...common, status: 'failed', error: this.secrets.redact(outcome.error.message) });
          else if (previous) results.set(tap, { ...common, status: 'sent' });
        },
      })
      .catch((err) => logger.warn(`notify hook failed: ${this.secrets.redact((err as Error).message)}`));
    const list = [...results.values()];
    for (const r of list) {
      const fields = { channel: r.channel, event, about: key, ...(r.attempts ? { attempts: r.attempts } : {}) };
      if (r.status === 'sent') logger.info(`${r.channel}: sent the ${event} notification (${notification.title})`, fields);
      else if (r.status === 'failed') logger.warn(`${r.channel}: could not deliver the ${event} notification: ${r.error}`, fields);
      else logger.debug(`${r.channel}: ${event} notification not sent: ${r.reason}`, fields);
    }
    const sent = list.filter((r) => r.status === 'sent');
    if (sent.length) {
      await this.#notifyState
        .update((s) => {
          for (const r of sent) (s.channels[r.channel] ??= {})[key] = { event, sentAt: now.toISOString() };
        })
        .catch((err) => logger.warn(`could not save the notification state in ${this.stateDir}: ${(err as Error).message}`));
    }
    return list;
  }

  private recordFailure(report: RunReport, stage: StageName | undefined, err: unknown): void {
    const entry = reportError(stage ?? 'run', err);
    entry.message = this.secrets.redact(entry.message);
    report.errors.push(entry);
    report.status = 'failed';
  }

  private async stage(report: RunReport, name: StageName, fn: () => Promise<void>): Promise<void> {
    const t0 = Date.now();
    try {
      await fn();
      report.stages[name] = { status: 'ok', durationMs: Date.now() - t0 };
    } catch (err) {
      report.stages[name] = { status: 'failed', durationMs: Date.now() - t0 };
      if (isBackupError(err)) err.stage ??= name;
      throw err;
    }
  }

  /**
   * Removes what interrupted runs left in staging (only called while holding the lock); what
   * the tool did not make there is reported and left alone.
   */
  private async cleanStaging(area: StagingArea, report: RunReport, logger: Logger): Promise<void> {
    const { removed, foreign } = await area.clean({ locked: true });
    for (const r of removed) logger.debug(`removed ${r}, left by an interrupted run`);
    if (foreign.length) {
      const message = `${area.dir} holds ${foreign.length === 1 ? 'an entry' : `${foreign.length} entries`} this tool did not make, left alone: ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', ...' : ''}`;
      logger.warn(message);
      report.warnings.push(message);
    }
    // Nothing to clean under snapshots/: a snapshot folder gets there in one rename with its
    // manifest already inside, so a crash leaves none without one. A folder without a manifest
    // (copied there by hand) is not a snapshot: listing ignores it, and it is left alone.
  }

  private async archiveArtifact(
    run: RunContext,
    p: PendingArtifact,
    stagingDir: string,
    workDir: string,
    follow: { followed: Map<string, Promise<StoredScanOutcome>>; followers: FollowingVerifier[] },
  ): Promise<ArtifactRecord> {
    const t0 = Date.now();
    const { spec } = p;
    const plugin = `sources.${p.source}`;
    const logger = run.logger.child({ plugin });
    const transforms: ArchiveTransform[] = [];
    await this.#hooks.archive.promise({ run, source: p.source, plugin: p.plugin, spec, addTransform: (t) => transforms.push(t) });
    const ext = spec.type === 'tree' ? 'tar' : spec.ext;
    const file = `${spec.name}.${ext}${compressionExtension[this.config.compression]}${transforms.map((t) => t.extension).join('')}`;
    const target = path.join(stagingDir, file);
    const tempDir = path.join(workDir, spec.name);
    await ensureDir(tempDir);

    let input: Readable | AsyncIterable<TarPiece>;
    let done: Promise<Record<string, unknown> | void> | undefined;
    let output: SourceOutput | undefined;
    const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    if (spec.type === 'tree') {
      input = tarPieces(spec.paths, {
        ...(spec.filter ? { filter: spec.filter } : {}),
        // Only zstd's pooled writes store incompressible data without compressing it.
        ...(this.config.compression === 'zstd' && !isStreamOnly('zstd') ? { isIncompressible: looksIncompressible } : {}),
        ...(spec.transform ? { transform: spec.transform } : {}),
        onWarning: (message, entry) => {
          logger.warn(`${entry.absPath}: ${message}`);
          run.report.warnings.push(`${plugin}: ${entry.absPath}: ${message}`);
        },
        stats,
      });
    } else {
      output = await openSourceOutput(spec, { tempDir, signal: run.signal, logger }, { plugin, secrets: this.secrets });
      input = output.stream;
      done = output.done;
    }
    logger.debug(`archiving ${file}`);
    const task = `${p.source}:${spec.name}`;
    // A large artifact is verified while it is written, by a thread reading behind the writer.
    let follower: FollowingVerifier | undefined;
    const compression = this.config.compression;
    // Encrypted: when the encryption stage says how a thread can undo it.
    const decoder = transforms.length === 1 ? transforms[0]!.threadDecoder?.() : undefined;
    const onStored =
      (transforms.length === 0 || decoder) && !isStreamOnly(compression) && FollowingVerifier.available
        ? (bytes: number) => {
            if (!follower && bytes >= FOLLOW_FROM) {
              follower = new FollowingVerifier(target, { compression, label: `staging: ${run.id}/${file}`, tree: spec.type === 'tree', decoder });
              follow.followers.push(follower);
              logger.debug(`verifying ${file} while it is written`);
            }
            follower?.advance(bytes);
          }
        : undefined;
    const written = await writeArtifact(input, target, {
      compression,
      compressionLevel: this.config.compressionLevel,
      ...afterCompression(transforms, this.config.compression),
      onProgress: (bytes) => this.#progress.update(task, bytes),
      ...(onStored ? { onStored } : {}),
      signal: run.signal,
    }).finally(() => this.#progress.done(task));
    if (follower) {
      const outcome = follower.finish();
      outcome.catch(() => {});
      follow.followed.set(file, outcome);
    }
    const extra = done ? await done : undefined;
    output?.checkConsumed(written.rawBytes);
    if (spec.type === 'file' && written.rawBytes === 0 && !spec.allowEmpty) {
      throw new BackupError('E_SOURCE', `${plugin}: ${spec.name} produced no data`, { plugin, stage: 'archive' });
    }
    const record: ArtifactRecord = {
      source: p.source,
      plugin: p.plugin,
      file,
      type: spec.type,
      ...(spec.type === 'file' ? { filename: spec.filename } : {}),
      bytes: written.bytes,
      sha256: written.sha256,
      rawBytes: written.rawBytes,
      compression: this.config.compression,
      encryption: transforms.length ? transforms[transforms.length - 1]!.info : null,
      meta: this.secrets.redactDeep({ ...spec.meta, ...(extra ?? {}), ...(spec.type === 'tree' ? { entries: stats } : {}) }),
    };
    run.report.artifacts.push({
      source: p.source,
      plugin: p.plugin,
      file,
      bytes: written.bytes,
      rawBytes: written.rawBytes,
      sha256: written.sha256,
      durationMs: Date.now() - t0,
    });
    logger.info(`archived ${file}: ${written.rawBytes} bytes -> ${written.bytes} bytes`);
    return record;
  }

  // ---- verify ------------------------------------------------------------------------------

  /** Re-reads an artifact: size, sha256, that it decodes (and for trees, that the tar parses), then plugins' deep checks. */
  private async verifyArtifact(reader: ArtifactReader, followed?: Promise<StoredScanOutcome>): Promise<ArtifactVerification> {
    const { artifact, manifest } = reader;
    const result: ArtifactVerification = { snapshot: manifest.id, source: artifact.source, file: artifact.file, ok: true, checks: [] };
    try {
      const undecodable = await reader.undecodable();
      if (undecodable) {
        await reader.checkStored();
        result.checks.push({ name: 'sha256', ok: true }, { name: 'decode', ok: true, detail: `not decoded on this host: ${undecodable}` });
        return result;
      }
      // Plugins' deep checks read the artifact on their own (with the same size and sha256
      // checks): they run beside the decoding, and count only if it succeeds.
      const deepChecks: CheckResult[] = [];
      const deep = this.#hooks.verify.promise(
        Object.assign(Object.create(reader) as ArtifactReader, {
          addCheck: (name: string, ok: boolean, detail?: string) => deepChecks.push({ name, ok, ...(detail ? { detail } : {}) }),
        }),
      );
      deep.catch(() => {});
      try {
        if (followed) this.followedCheck(reader, await followed, result);
        else await this.decodeCheck(reader, result);
      } catch (err) {
        await deep.catch(() => {});
        throw err;
      }
      await deep;
      result.checks.push(...deepChecks);
      result.ok = result.checks.every((c) => c.ok);
    } catch (err) {
      const explained = await reader.explain(err);
      result.ok = false;
      result.error = this.secrets.redact(explained.message);
      result.failure = artifactFailureKind(err, explained);
    }
    return result;
  }

  /** Size, sha256, decoding and (for trees) every tar header of one artifact. */
  private async decodeCheck(reader: ArtifactReader, result: ArtifactVerification): Promise<void> {
    const { artifact } = reader;
    if (artifact.type === 'tree') {
      // A tree that a restore would refuse (a FIFO, "..", a symlink leading out) fails verification.
      const scanner = verifyingTarScanner(reader.label);
      const raw = await reader.readDecoded((data) => scanner.update(data));
      const stats = scanner.end();
      if (raw !== artifact.rawBytes) {
        throw new BackupError('E_INTEGRITY', `${reader.label}: decodes to ${raw} bytes, the manifest says ${artifact.rawBytes}`);
      }
      result.checks.push({ name: 'tar', ok: true, detail: `${stats.files} files, ${stats.directories} folders, ${stats.symlinks} symlinks` });
    } else {
      const raw = await reader.readDecoded(() => {});
      if (raw !== artifact.rawBytes) {
        throw new BackupError('E_INTEGRITY', `${reader.label}: decodes to ${raw} bytes, the manifest says ${artifact.rawBytes}`);
      }
    }
    result.checks.unshift({ name: 'sha256', ok: true });
  }

  /** The checks of `decodeCheck`, from what a thread read back while the artifact was written. */
  private followedCheck(reader: ArtifactReader, outcome: StoredScanOutcome, result: ArtifactVerification): void {
    const stats = checkStoredScan(outcome, reader.artifact, reader.label);
    result.checks.push({ name: 'sha256', ok: true });
    if (stats) result.checks.push({ name: 'tar', ok: true, detail: `${stats.files} files, ${stats.directories} folders, ${stats.symlinks} symlinks` });
  }

  async verify(options: { snapshot?: string; all?: boolean; from?: string } = {}): Promise<VerifyResult> {
    const repo = this.repositoryFor(options.from);
    const startedAt = this.now();
    const scratch = new Scratch(this.config.backupRoot);
    const result: VerifyResult = { repository: repo.name, ok: true, snapshots: [] };
    try {
      const ids = options.all ? await repo.snapshotIds() : [await repo.resolveId(options.snapshot ?? 'latest')];
      if (options.all && ids.length === 0) throw new BackupError('E_NOT_FOUND', `${repo.description} holds no snapshots`);
      for (const id of ids) {
        let manifest: Manifest | undefined;
        try {
          manifest = await repo.readManifest(id);
          await this.#hooks.checkManifest.promise({ repository: repo, manifest, purpose: 'verify', logger: this.logger });
        } catch (err) {
          const error = this.secrets.redact((err as Error).message);
          this.logger.error(`FAILED ${id}: ${error}`);
          result.snapshots.push({ id, ok: false, error, failure: { kind: manifestFailureKind(err, manifest !== undefined), error }, artifacts: [] });
          continue;
        }
        const checked = manifest;
        const artifacts = await mapLimit(checked.artifacts, this.config.concurrency, (artifact) =>
          this.verifyArtifact(new ArtifactReader({ hooks: this.#hooks, repository: repo, manifest: checked, artifact, logger: this.logger, scratch })),
        );
        const bad = artifacts.find((a) => !a.ok);
        result.snapshots.push({
          id,
          ok: !bad,
          ...(bad ? { failure: { kind: bad.failure ?? 'integrity', error: `${bad.file}: ${bad.error ?? failedChecks(bad)}` } } : {}),
          artifacts,
        });
        for (const a of artifacts) {
          if (a.ok) this.logger.info(`ok ${id}/${a.file}`, { checks: a.checks.map((c) => c.name).join(',') });
          else this.logger.error(`FAILED ${id}/${a.file}: ${a.error ?? failedChecks(a)}`);
        }
      }
    } finally {
      await scratch.dispose();
    }
    result.ok = result.snapshots.every((s) => s.ok);
    await this.#history
      .append({
        kind: 'verify',
        status: result.ok ? 'success' : 'failed',
        startedAt: startedAt.toISOString(),
        finishedAt: this.now().toISOString(),
        repository: repo.name,
        snapshots: result.snapshots.map((s) => ({ id: s.id, ok: s.ok, ...(s.failure ? { failure: s.failure } : {}) })),
      })
      .catch((err) => this.logger.warn(`could not record the verification in ${this.stateDir}: ${(err as Error).message}`));
    return result;
  }

  // ---- list --------------------------------------------------------------------------------

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
    }));
  }

  // ---- restore -----------------------------------------------------------------------------

  private async readersFor(repo: Repository, snapshot: string, sources: string[] | undefined, scratch: Scratch, purpose: ManifestPurpose) {
    const id = await repo.resolveId(snapshot);
    const manifest = await this.readCheckedManifest(repo, id, purpose);
    const known = [...new Set(manifest.artifacts.map((a) => a.source))];
    for (const s of sources ?? []) {
      if (!known.includes(s)) throw new BackupError('E_USAGE', `snapshot ${id} has no source "${s}" (its sources: ${known.join(', ')})`);
    }
    const artifacts = manifest.artifacts.filter((a) => !sources?.length || sources.includes(a.source));
    return {
      id,
      manifest,
      readers: artifacts.map((artifact) => new ArtifactReader({ hooks: this.#hooks, repository: repo, manifest, artifact, logger: this.logger, scratch })),
    };
  }

  async restore(options: RestoreOptions): Promise<RestoreResult> {
    if (Boolean(options.to) === Boolean(options.into)) throw new BackupError('E_USAGE', 'restore needs exactly one of --to DIR or --into URL');
    const repo = this.repositoryFor(options.from);
    const scratch = new Scratch(this.config.backupRoot);
    try {
      const { id, readers } = await this.readersFor(repo, options.snapshot, options.sources, scratch, 'restore');
      if (options.to) {
        const restored = await restoreToDir(readers, options.to, {
          ...(options.force ? { force: true } : {}),
          ...(options.preserveOwner ? { preserveOwner: true } : {}),
        });
        for (const r of restored) this.logger.info(`restored ${r.file} to ${r.path}`);
        return { snapshot: id, repository: repo.name, restored };
      }
      if (!options.sources?.length) throw new BackupError('E_USAGE', 'restore --into needs --source S (the database source to restore)');
      const restored: { source: string; file: string; into: string }[] = [];
      const into = options.into!;
      // The URL usually carries a password: it must not come back out in logs or the result.
      this.secrets.addFromUrl(into);
      for (const reader of readers) {
        const handled = await this.#hooks.restore.promise(
          Object.assign(Object.create(reader) as ArtifactReader, { into, database: options.database, clean: Boolean(options.clean) }),
        );
        if (handled === undefined) {
          throw new BackupError('E_USAGE', `source ${reader.artifact.source} (${reader.artifact.plugin}) cannot be restored --into a server; use --to DIR`);
        }
        if (!handled) continue;
        restored.push({ source: reader.artifact.source, file: reader.artifact.file, into: this.secrets.redact(into) });
      }
      return { snapshot: id, repository: repo.name, restored };
    } finally {
      await scratch.dispose();
    }
  }

  // ---- restore test ------------------------------------------------------------------------

  /** Restores a snapshot into a private sandbox and checks it: generic checks, then each source's own. */
  async restoreTest(options: { snapshot?: string; from?: string } = {}): Promise<RestoreTestResult> {
    const repo = this.repositoryFor(options.from ?? this.config.checks.restoreTest?.from);
    const startedAt = this.now();
    const scratch = new Scratch(this.config.backupRoot);
    let result: RestoreTestResult | undefined;
    try {
      const { id, readers } = await this.readersFor(repo, options.snapshot ?? 'latest', undefined, scratch, 'restore-test');
      const sandbox = await scratch.dir(`restore-test-${id}`);
      result = { snapshot: id, repository: repo.name, ok: true, artifacts: [] };
      for (const reader of readers) {
        const { artifact } = reader;
        const entry = { source: artifact.source, file: artifact.file, ok: true, checks: [] as CheckResult[] } as RestoreTestResult['artifacts'][number];
        try {
          const [restored] = await restoreToDir([reader], path.join(sandbox, artifact.file), {});
          entry.checks.push({ name: 'restore', ok: true, detail: restored!.path });
          const expected = artifact.meta.entries as TreeStats | undefined;
          if (artifact.type === 'tree' && expected && restored!.stats) {
            const got = restored!.stats;
            const same = got.files === expected.files && got.directories === expected.directories && got.symlinks === expected.symlinks;
            entry.checks.push({
              name: 'entries',
              ok: same,
              detail: `${got.files} files, ${got.directories} folders, ${got.symlinks} symlinks (manifest: ${expected.files}, ${expected.directories}, ${expected.symlinks})`,
            });
          }
          await this.#hooks.restoreTest.promise(
            Object.assign(Object.create(reader) as ArtifactReader, {
              restoredPath: restored!.path,
              addCheck: (name: string, ok: boolean, detail?: string) => entry.checks.push({ name, ok, ...(detail ? { detail } : {}) }),
            }),
          );
          entry.ok = entry.checks.every((c) => c.ok);
        } catch (err) {
          entry.ok = false;
          entry.error = this.secrets.redact((err as Error).message);
        }
        if (entry.ok) this.logger.info(`restore test ok: ${id}/${artifact.file}`);
        else this.logger.error(`restore test FAILED: ${id}/${artifact.file}: ${entry.error ?? failedChecks(entry)}`);
        result.artifacts.push(entry);
      }
      result.ok = result.artifacts.every((a) => a.ok);
      return result;
    } finally {
      await scratch.dispose();
      await this.#history
        .append({
          kind: 'restore-test',
          status: result?.ok ? 'success' : 'failed',
          startedAt: startedAt.toISOString(),
          finishedAt: this.now().toISOString(),
          repository: repo.name,
          snapshot: result?.snapshot ?? null,
        })
        .catch((err) => this.logger.warn(`could not record the restore test in ${this.stateDir}: ${(err as Error).message}`));
    }
  }

  // ---- replicate ---------------------------------------------------------------------------

  /**
   * Brings every destination up to date, a few at a time: each gets the snapshots its retention
   * keeps and it lacks, newest first (so a failure costs the oldest), skipping objects already
   * there (what an interrupted run sent). Returns one error per destination that failed; the
   * others are unaffected.
   */
  private async replicateAll(run: RunContext, logger: Logger): Promise<BackupError[]> {
    const localIds = await this.#repository.snapshotIds();
    const failures: BackupError[] = [];
    await mapLimit([...this.#destinations.values()], this.config.concurrency, async (d) => {
      const t0 = Date.now();
      const plugin = `destinations.${d.name}`;
      const log = logger.child({ plugin });
      const result: DestinationResult = { name: d.name, status: 'ok', sent: 0, skipped: 0, bytes: 0, durationMs: 0, snapshots: [] };
      const target = this.repositoryFor(d.name);
      try {
        const listing = await target.listing();
        const existing = new Map([...listing.objects.values()].flat().map((o) => [o.key, o]));
        const wanted = this.retained([...new Set([...localIds, ...listing.ids])], d.retention).filter(
          (id) => localIds.includes(id) && !listing.ids.includes(id),
        );
        log.debug(`${d.name} holds ${listing.ids.length} snapshot(s); sending ${wanted.length}`);
        for (const id of wanted.reverse()) {
          const manifest = await this.#repository.readManifest(id);
          const copied = await copySnapshot(this.#repository, target, manifest, existing, { retry: DEFAULT_RETRY, logger: log, at: this.now() });
          result.sent += copied.sent;
          result.skipped += copied.skipped;
          result.bytes += copied.bytes;
          result.snapshots!.push(id);
        }
        log.info(`replicated to ${d.name}: ${result.sent} object(s) sent, ${result.skipped} already there`);
      } catch (err) {
        const error = isBackupError(err) ? err : new BackupError('E_DESTINATION', `${plugin}: ${(err as Error).message}`, { cause: err });
        error.plugin ??= plugin;
        error.stage ??= 'replicate';
        result.status = 'failed';
        result.code = error.code;
        result.error = this.secrets.redact(error.message);
        failures.push(error);
        log.error(`replication to ${d.name} failed: ${result.error}`);
      }
      result.durationMs = Date.now() - t0;
      run.report.destinations.push(result);
    });
    return failures;
  }

  /** The ids a retention policy keeps (by each snapshot's profile when no override is given). */
  private retained(ids: string[], override: RetentionPolicy | undefined): string[] {
    return decideRetention(ids, policyFor(this.config.profiles, override), new Set(), this.now())
      .filter((d) => d.keep)
      .map((d) => d.id)
      .sort();
  }

  // ---- prune and forget --------------------------------------------------------------------

  /** backupRoot and every destination, each with its own retention (none: the profiles'). */
  private pruneTargets(): { name: string; repo: Repository; retention: RetentionPolicy | undefined }[] {
    return [
      { name: BACKUP_ROOT, repo: this.#repository, retention: undefined },
      ...[...this.#destinations.values()].map((d) => ({ name: d.name, repo: this.repositoryFor(d.name), retention: d.retention })),
    ];
  }

  async prune(options: { dryRun?: boolean; from?: string } = {}): Promise<PruneResult[]> {
    const lock = new RunLock(this.stateDir);
    if (!options.dryRun) {
      await lock.acquire('prune');
    }
    try {
      const targets = options.from
        ? [{ repo: this.repositoryFor(options.from), retention: this.#destinations.get(options.from)?.retention }]
        : this.pruneTargets();
      const results: PruneResult[] = [];
      for (const t of targets) results.push(await this.pruneOne(t.repo, t.retention, Boolean(options.dryRun), this.logger));
      await this.#hooks.prune.promise({ run: undefined, dryRun: Boolean(options.dryRun), logger: this.logger });
      return results;
    } finally {
      await lock.release().catch(() => {});
    }
  }

  private async pruneOne(repo: Repository, override: RetentionPolicy | undefined, dryRun: boolean, logger: Logger): Promise<PruneResult> {
    const startedAt = this.now();
    const result = await pruneRepository(repo, {
      policy: policyFor(this.config.profiles, override),
      override,
      suspects: suspectSnapshots(await this.#history.read()),
      now: startedAt,
      dryRun,
      logger,
    });
    if (!dryRun) await this.#history.append(pruneRecord(result, startedAt, this.now())).catch(() => {});
    return result;
  }

  /** Deletes one snapshot from one repository (backupRoot unless `from`), under the run lock. */
  async forget(options: { snapshot: string; from?: string }): Promise<ForgetResult> {
    const repo = this.repositoryFor(options.from);
    const lock = new RunLock(this.stateDir);
    await lock.acquire(`forget ${options.snapshot}`);
    try {
      const startedAt = this.now();
      const result = await forgetSnapshot(repo, options.snapshot, { suspects: suspectSnapshots(await this.#history.read()), now: startedAt, logger: this.logger });
      await this.#history
        .append({ kind: 'forget', status: 'success', startedAt: startedAt.toISOString(), finishedAt: this.now().toISOString(), repository: repo.name, removed: [result.id] })
        .catch(() => {});
      return result;
    } finally {
      await lock.release().catch(() => {});
    }
  }

  // ---- status ------------------------------------------------------------------------------

  /**
   * Health: freshness, the last run, storage use, verification, replication, restore tests, and
   * 3-2-1. With `notify`, each condition that began or cleared since the last such check is
   * sent to the channels (once), and every condition gets one log line.
   */
  async status(options: { notify?: boolean } = {}): Promise<StatusResult> {
    const now = this.now();
    const records = await this.#history.read();
    const lastRun = [...records].reverse().find((r) => r.kind === 'run') ?? null;
    const listing = await this.#repository.listing().catch(() => undefined);
    const ids = listing?.ids ?? [];
    const latest = ids.at(-1) ?? null;
    // backupRoot's suspects and foreign folders as they are now; destinations' from the history.
    const suspects = suspectSnapshots(records).filter((s) =>
      s.repository === BACKUP_ROOT ? ids.includes(s.id) : this.#destinations.has(s.repository.replace(/^destinations\./, '')),
    );
    const foreign = foreignFolders(records, listing, (repository) => this.#destinations.has(repository.replace(/^destinations\./, '')));
    const checks: CheckResult[] = [];
    const latestTime = latest ? parseSnapshotId(latest)!.time : undefined;
    const age = latestTime ? now.getTime() - latestTime.getTime() : Infinity;
    checks.push({
      name: 'freshness',
      ok: age <= this.config.checks.maxAgeMs,
      detail: latest ? `latest snapshot ${latest} is ${formatAge(Math.max(0, age))} old (max ${formatAge(this.config.checks.maxAgeMs)})` : 'no snapshot yet',
    });
    checks.push({
      name: 'last-run',
      ok: lastRun?.status === 'success',
      detail: lastRun ? `${lastRun.status} at ${lastRun.finishedAt}${lastRun.snapshot ? ` (${lastRun.snapshot})` : ''}` : 'never ran',
    });
    checks.push(await this.storageCheck());
    checks.push(verificationCheck(records, suspects));
    checks.push(this.replicationCheck(records));
    checks.push(this.restoreTestCheck(records, now));
    checks.push(authenticationCheck(this.config));

    const traits: DestinationTraits[] = [{ medium: 'local-disk', offsite: false }];
    const lastReplication = new Map<string, 'ok' | 'failed'>();
    for (const r of records) if (r.kind === 'run') for (const d of r.destinations ?? []) lastReplication.set(d.name, d.status);
    for (const d of this.#destinations.values()) if (lastReplication.get(d.name) === 'ok') traits.push(d.traits);
    const copies = latest ? traits.length : 0;
    const media = new Set(traits.map((t) => t.medium)).size;
    const offsite = traits.some((t) => t.offsite);
    const result: StatusResult = {
      healthy: checks.every((c) => c.ok),
      checks,
      strategy: { copies, media, offsite, compliant: copies >= 3 && media >= 2 && offsite },
      lastRun,
      snapshots: ids.length,
      latest,
      suspects,
      foreign,
    };
    if (options.notify) Object.assign(result, await this.notifyHealth(checks, now));
    return result;
  }

  /** Compares each health condition with the last check's, logs one line each, and alerts on changes. */
  private async notifyHealth(checks: CheckResult[], now: Date): Promise<{ changes: HealthChange[]; notifications: NotificationResult[] }> {
    const state = await this.#notifyState.read();
    const at = now.toISOString();
    const changes: HealthChange[] = [];
    const conditions = checks.filter((c) => (HEALTH_CONDITIONS as readonly string[]).includes(c.name));
    const next: Record<string, ConditionState> = {};
    const resends: NonNullable<ConditionState['undelivered']>[] = [];
    for (const c of conditions) {
      const prev = state.conditions[c.name];
      const detail = c.detail ?? '';
      const transition = !c.ok && (!prev || prev.ok) ? 'begin' : c.ok && prev && !prev.ok ? 'clear' : undefined;
      const since = prev && prev.ok === c.ok ? prev.since : at;
      next[c.name] = { ok: c.ok, since, detail };
      // A begin or clear a channel could not take (its server was down) is sent again, to it alone.
      if (!transition && prev?.undelivered) resends.push(prev.undelivered);
      if (transition) changes.push({ name: c.name, state: transition, detail, since: transition === 'clear' ? prev!.since : at });
      const fields = { condition: c.name, ok: c.ok, state: transition ?? (c.ok ? 'ok' : 'failing'), since };
      const severe = !warningConditions.has(c.name);
      if (transition === 'begin') this.logger[severe ? 'error' : 'warn'](`health ${c.name}: began failing: ${detail}`, fields);
      else if (transition === 'clear') this.logger.info(`health ${c.name}: cleared: ${detail}`, fields);
      else if (!c.ok) this.logger.warn(`health ${c.name}: still failing since ${since}: ${detail}`, fields);
      else this.logger.info(`health ${c.name}: ok: ${detail}`, fields);
    }
    await this.#notifyState.update((s) => {
      Object.assign(s.conditions, next);
      for (const change of changes) for (const sent of Object.values(s.channels)) delete sent[`health:${change.name}`];
    });
    const notifications: NotificationResult[] = [];
    const undelivered: Record<string, ConditionState['undelivered']> = {};
    const send = async (change: HealthChange, event: NotifyEvent, only?: ReadonlySet<string>) => {
      const results = await this.notify(healthNotification(this.config.host, this.secrets.redactDeep(change), event, now), this.logger, only);
      notifications.push(...results);
      const failed = results.filter((r) => r.status === 'failed').map((r) => r.channel);
      undelivered[change.name] = failed.length ? { change, event, channels: failed } : undefined;
    };
    for (const change of changes) {
      await send(change, change.state === 'clear' ? 'recovery' : warningConditions.has(change.name) ? 'warning' : 'failure');
    }
    for (const r of resends) await send(r.change, r.event, new Set(r.channels));
    await this.#notifyState.update((s) => {
      for (const [name, pending] of Object.entries(undelivered)) {
        const condition = s.conditions[name];
        if (!condition) continue;
        if (pending) condition.undelivered = pending;
        else delete condition.undelivered;
      }
    });
    return { changes, notifications };
  }

  private async storageCheck(): Promise<CheckResult> {
    const max = this.config.checks.maxStorageUsage;
    const places: [string, Destination][] = [
      [BACKUP_ROOT, this.#repository.destination],
      ...[...this.#destinations.values()].map((d) => [d.name, d.destination] as [string, Destination]),
    ];
    const used: { where: string; fraction: number }[] = [];
    for (const [where, destination] of places) {
      const usage = await withTimeout(destination.usage?.(), 15_000).catch(() => undefined);
      if (usage && usage.totalBytes > 0) used.push({ where, fraction: usage.usedBytes / usage.totalBytes });
    }
    if (!used.length) return { name: 'storage', ok: true, detail: 'usage unknown' };
    const over = used.filter((u) => u.fraction > max);
    const pct = (f: number) => `${(f * 100).toFixed(1)}%`;
    return {
      name: 'storage',
      ok: over.length === 0,
      detail: `${(over.length ? over : used).map((u) => `${pct(u.fraction)} used at ${u.where}`).join(', ')} (max ${(max * 100).toFixed(0)}%)`,
    };
  }

  private replicationCheck(records: HistoryRecord[]): CheckResult {
    if (!this.#destinations.size) return { name: 'replication', ok: true, detail: 'no destinations configured' };
    const last = new Map<string, { status: 'ok' | 'failed'; error?: string; at: string }>();
    for (const r of records) {
      if (r.kind !== 'run' && r.kind !== 'replicate') continue;
      for (const d of r.destinations ?? []) last.set(d.name, { status: d.status, ...(d.error ? { error: d.error } : {}), at: r.finishedAt });
    }
    const parts: string[] = [];
    let ok = true;
    for (const name of this.#destinations.keys()) {
      const l = last.get(name);
      if (!l) parts.push(`${name}: not replicated yet`);
      else if (l.status === 'failed') {
        ok = false;
        parts.push(`${name}: failed at ${l.at}${l.error ? `: ${l.error}` : ''}`);
      } else parts.push(`${name}: ok at ${l.at}`);
    }
    return { name: 'replication', ok, detail: parts.join('; ') };
  }

  private restoreTestCheck(records: HistoryRecord[], now: Date): CheckResult {
    const last = [...records].reverse().find((r) => r.kind === 'restore-test');
    const maxAge = this.config.checks.restoreTest?.maxAgeMs;
    if (!last) return { name: 'restore-test', ok: !maxAge, detail: 'no restore test recorded yet' };
    const where = `${last.snapshot ?? 'no snapshot'} from ${last.repository ?? BACKUP_ROOT}`;
    if (last.status === 'failed') return { name: 'restore-test', ok: false, detail: `restore test of ${where} failed at ${last.finishedAt}` };
    const age = now.getTime() - Date.parse(last.finishedAt);
    if (maxAge && age > maxAge) {
      return { name: 'restore-test', ok: false, detail: `the last restore test (${where}) passed ${formatAge(age)} ago (max ${formatAge(maxAge)})` };
    }
    return { name: 'restore-test', ok: true, detail: `restore test of ${where} passed at ${last.finishedAt}` };
  }
}

function withTimeout<T>(promise: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (!promise) return Promise.resolve(undefined);
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
      timer.unref();
    }),
  ]);
}

function failedChecks(a: { checks: CheckResult[] }): string {
  return a.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}${c.detail ? `: ${c.detail}` : ''}`)
    .join('; ');
}

export { DIR_MODE };

/**
 * How the stages after compression run: one in-process encoder or one program in place of the
 * pooled writes when they allow it, else stream stages (always with gzip, itself a stream stage,
 * and with zstd without zstd-napi).
 */
function afterCompression(transforms: ArchiveTransform[], compression: Compression): Pick<WriteArtifactOptions, 'chunked' | 'program' | 'transforms'> {
  const only = transforms.length === 1 && !isStreamOnly(compression) ? transforms[0]! : undefined;
  if (only?.chunked) return { chunked: only.chunked() };
  if (only?.program) return { program: only.program() };
  return { transforms: transforms.map((t) => t.create()) };
}

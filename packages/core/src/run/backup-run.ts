import type { ProfileConfig } from '../config.js';
import type { EngineContext } from '../context.js';
import { BackupError, isBackupError } from '../errors.js';
import type { ArtifactSpec, RunContext } from '../hooks.js';
import type { Logger } from '../log.js';
import type { ArtifactRecord } from '../manifest.js';
import { newReport, reportError, type RunReport, type StageName } from '../report.js';
import type { SnapshotWriter } from '../repository-format.js';
import { makeSnapshotId } from '../snapshot-id.js';
import { zstdCodec } from '../zstd/index.js';
import { SourceOutcomes, sourceLimits } from './source-outcomes.js';

export interface RunOptions {
  profile?: string;
  /** Back up only these sources of the profile. */
  only?: string[];
  dryRun?: boolean;
  /** One artifact at a time. */
  sequential?: boolean;
  /** This many artifacts at once (the rc file's `concurrency` otherwise). */
  parallel?: number;
  signal?: AbortSignal;
}

/** An artifact a source asked for in collect, to archive. */
export interface PendingArtifact {
  source: string;
  plugin: string;
  spec: ArtifactSpec;
}

/**
 * One run of a profile, from the lock to the last notification: what its stages share (webpack's
 * Compilation to the Engine's Compiler). `run` is the view hooks get.
 */
export class BackupRun {
  readonly ctx: EngineContext;
  readonly profile: ProfileConfig;
  readonly options: RunOptions;
  readonly startedAt: Date;
  readonly report: RunReport;
  readonly logger: Logger;
  /** Aborted by the caller's signal, and by the first artifact that fails. */
  readonly abort = new AbortController();
  readonly run: RunContext;
  pending: PendingArtifact[] = [];
  records: ArtifactRecord[] = [];
  /** The snapshot being written, from the archive stage on. */
  writer: SnapshotWriter | undefined;
  /** Which sources failed; their signals and timeouts. */
  readonly sources: SourceOutcomes;
  readonly #onAbort = () => this.abort.abort(this.options.signal?.reason);

  constructor(ctx: EngineContext, profile: ProfileConfig, options: RunOptions) {
    this.ctx = ctx;
    this.profile = profile;
    this.options = options;
    const sources = options.only?.length ? profile.sources.filter((s) => options.only!.includes(s)) : profile.sources;
    this.startedAt = ctx.now();
    const id = makeSnapshotId(this.startedAt, profile.name);
    this.report = newReport(profile.name, ctx.config.host, this.startedAt, Boolean(options.dryRun));
    this.logger = ctx.logger.child({ snapshot: id });
    // zstd's backend is chosen here, not at start-up; without one, this says how to get one.
    if (ctx.config.compression === 'zstd') this.logger.debug(`zstd through ${zstdCodec().backend}`);
    options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.sources = new SourceOutcomes(this.abort, {
      failFast: profile.failFast,
      runTimeoutMs: profile.timeoutMs,
      limits: (source) => sourceLimits(ctx.config, source),
    });
    this.run = {
      id,
      profile: profile.name,
      host: ctx.config.host,
      startedAt: this.startedAt,
      backupRoot: ctx.config.backupRoot,
      dryRun: Boolean(options.dryRun),
      sources,
      logger: this.logger,
      signal: this.abort.signal,
      report: this.report,
    };
  }

  /** Checks `--only` against the profile's sources; a usage error names them. */
  static checkOnly(profile: ProfileConfig, only: readonly string[] | undefined): void {
    for (const s of only ?? []) {
      if (!profile.sources.includes(s)) {
        throw new BackupError('E_USAGE', `--only ${s}: not a source of profile ${profile.name} (its sources: ${profile.sources.join(', ')})`);
      }
    }
  }

  get id(): string {
    return this.run.id;
  }

  get concurrency(): number {
    return this.options.sequential ? 1 : (this.options.parallel ?? this.ctx.config.concurrency);
  }

  /** Stops listening to the caller's signal (the run is over). */
  detach(): void {
    this.sources.dispose();
    this.options.signal?.removeEventListener('abort', this.#onAbort);
  }

  /** Runs one stage, timing it into the report; a failure is tagged with the stage and rethrown. */
  async stage(name: StageName, fn: () => Promise<void>): Promise<void> {
    const t0 = Date.now();
    try {
      await fn();
      this.report.stages[name] = { status: 'ok', durationMs: Date.now() - t0 };
    } catch (err) {
      this.report.stages[name] = { status: 'failed', durationMs: Date.now() - t0 };
      if (isBackupError(err)) err.stage ??= name;
      throw err;
    }
  }

  /** Adds a failure to the report (message redacted) and marks the run failed. */
  recordFailure(stage: StageName | undefined, err: unknown): void {
    const entry = reportError(stage ?? 'run', err);
    entry.message = this.ctx.secrets.redact(entry.message);
    this.report.errors.push(entry);
    this.report.status = 'failed';
  }
}

import { BackupError, isBackupError } from '../errors.js';
import type { ResolvedConfig } from '../config.js';
import type { FailedSource } from '../manifest.js';

/** A source's engine settings from the rc file (`sources.<name>.timeout`, `.priority`). */
export interface SourceLimits {
  timeoutMs: number | undefined;
  priority: number;
}

export function sourceLimits(config: Pick<ResolvedConfig, 'sources'>, source: string): SourceLimits {
  const settings = config.sources.find((s) => s.instance === source)?.settings ?? {};
  return {
    timeoutMs: typeof settings.timeout === 'number' ? settings.timeout : undefined,
    priority: typeof settings.priority === 'number' ? settings.priority : 0,
  };
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * Which sources of a run failed, and the signals that stop them. Each source has a signal of its
 * own, aborted when it fails, when its `timeout` passes, when the run's `timeout` passes, or with
 * the run; so one source's failure stops only that source's artifacts (unless `failFast`, when it
 * stops the run).
 */
export class SourceOutcomes {
  readonly failed = new Map<string, BackupError>();
  readonly #run: AbortController;
  readonly #failFast: boolean;
  readonly #limits: (source: string) => SourceLimits;
  readonly #controllers = new Map<string, AbortController>();
  readonly #timers: NodeJS.Timeout[] = [];
  /** Aborted when the run's timeout passes: every source still working stops. */
  readonly #deadline = new AbortController();

  constructor(run: AbortController, options: { failFast: boolean; runTimeoutMs: number | undefined; limits: (source: string) => SourceLimits }) {
    this.#run = run;
    this.#failFast = options.failFast;
    this.#limits = options.limits;
    const ms = options.runTimeoutMs;
    if (ms !== undefined) {
      this.#timer(ms, () => this.#deadline.abort(new BackupError('E_SOURCE', `the run's sources did not finish within its timeout (${seconds(ms)}) and were stopped`, { stage: 'archive' })));
    }
  }

  get failFast(): boolean {
    return this.#failFast;
  }

  /** The signal of one source: starts its own timeout the first time it is asked for. */
  signal(source: string): AbortSignal {
    let controller = this.#controllers.get(source);
    if (!controller) {
      const own = (controller = new AbortController());
      this.#controllers.set(source, own);
      const { timeoutMs } = this.#limits(source);
      if (timeoutMs !== undefined) {
        this.#timer(timeoutMs, () =>
          own.abort(new BackupError('E_SOURCE', `sources.${source}: did not finish within its timeout (${seconds(timeoutMs)}) and was stopped`, { plugin: `sources.${source}` })),
        );
      }
    }
    return AbortSignal.any([this.#run.signal, this.#deadline.signal, controller.signal]);
  }

  /** The run's timeout passed. */
  get timedOut(): boolean {
    return this.#deadline.signal.aborted;
  }

  /** The run's timeout, for a stage that waits on all sources at once (collect). */
  get deadline(): AbortSignal {
    return this.#deadline.signal;
  }

  /**
   * Records the first failure of `source` (the timeout that stopped it, when one did) and stops its
   * other artifacts; with failFast the run is aborted instead.
   */
  fail(source: string, err: unknown): BackupError {
    const signal = this.signal(source);
    const reason: unknown = signal.aborted && isBackupError(signal.reason) && !this.#run.signal.aborted ? signal.reason : err;
    const error = isBackupError(reason) ? reason : new BackupError('E_ARCHIVE', (reason as Error).message, { cause: reason });
    error.plugin ??= `sources.${source}`;
    if (!this.failed.has(source)) this.failed.set(source, error);
    this.#controllers.get(source)!.abort(error);
    if (this.#failFast) this.#run.abort(error);
    return this.failed.get(source)!;
  }

  isFailed(source: string): boolean {
    return this.failed.has(source);
  }

  /** The failed sources as the manifest and the report record them. */
  records(redact: (s: string) => string): FailedSource[] {
    return [...this.failed].map(([source, e]) => ({
      source,
      ...(e.plugin ? { plugin: e.plugin } : {}),
      stage: e.stage ?? 'archive',
      code: e.code,
      message: redact(e.message),
    }));
  }

  /** Stops the timers (the sources are done). */
  dispose(): void {
    for (const t of this.#timers) clearTimeout(t);
  }

  #timer(ms: number, fn: () => void): void {
    const t = setTimeout(fn, ms);
    t.unref();
    this.#timers.push(t);
  }
}

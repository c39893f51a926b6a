import { isBackupError } from './errors.js';
import type { FailedSource } from './manifest.js';
import type { NotificationResult, NotifyEvent } from './notify.js';
import type { SecretRegistry } from './secrets.js';

export type StageName =
  | 'collect'
  | 'archive'
  | 'verify'
  | 'commit'
  | 'replicate'
  | 'prune'
  | 'restoreTest'
  | 'notify';

export interface StageResult {
  status: 'ok' | 'failed' | 'skipped';
  durationMs: number;
}

export interface ReportArtifact {
  source: string;
  plugin: string;
  file: string;
  bytes: number;
  rawBytes: number;
  sha256: string;
  durationMs: number;
}

export interface DestinationResult {
  name: string;
  status: 'ok' | 'failed';
  /** Objects sent this run, and objects found already there. */
  sent: number;
  skipped: number;
  bytes: number;
  durationMs: number;
  /** Snapshots completed at this destination during the run. */
  snapshots?: string[];
  error?: string;
  /** The error code when it failed (E_AUTH: credentials or host key; E_DESTINATION: the rest). */
  code?: string;
}

export interface ReportError {
  stage: string;
  plugin?: string;
  code: string;
  message: string;
}

/** The one typed report of a run, handed to every notifier and printed by `run --json`. */
export interface RunReport {
  snapshot: string | null;
  profile: string;
  host: string;
  status: 'success' | 'failed';
  /**
   * How the notify stage classed the run: failure, warning (succeeded with warnings), success,
   * or recovery (the first success of the profile after a failure). Null for a dry run.
   */
  event: NotifyEvent | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  dryRun: boolean;
  artifacts: ReportArtifact[];
  stages: Partial<Record<StageName, StageResult>>;
  destinations: DestinationResult[];
  errors: ReportError[];
  /** The sources that failed while the others were committed (a partial snapshot), or that failed a failFast run. */
  failedSources: FailedSource[];
  warnings: string[];
  /** The last log lines of the run, redacted. */
  logTail: string[];
  /** What each notification channel did with this run: sent, skipped (and why) or failed. */
  notifications: NotificationResult[];
}

export function newReport(profile: string, host: string, startedAt: Date, dryRun: boolean): RunReport {
  return {
    snapshot: null,
    profile,
    host,
    status: 'success',
    event: null,
    startedAt: startedAt.toISOString(),
    finishedAt: startedAt.toISOString(),
    durationMs: 0,
    dryRun,
    artifacts: [],
    stages: {},
    destinations: [],
    errors: [],
    failedSources: [],
    warnings: [],
    logTail: [],
    notifications: [],
  };
}

export function reportError(stage: string, err: unknown): ReportError {
  if (isBackupError(err)) {
    return { stage: err.stage ?? stage, ...(err.plugin ? { plugin: err.plugin } : {}), code: err.code, message: err.message };
  }
  return { stage, code: 'E_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

/**
 * The failures of a stage whose first failure aborted the others, each root cause once. Left out:
 * the abort's reason as the other tasks rethrew it (the same error again), and what they failed
 * with because they were stopped (E_ABORTED, an AbortError, or an error caused by the reason).
 * When every failure is of that kind (the run itself was interrupted), the first one stands.
 */
export function rootFailures<E extends Error>(failures: readonly E[], abortReason: unknown): E[] {
  const unique = [...new Set(failures)];
  const roots = unique.filter((e) => e === abortReason || !stoppedByAbort(e, abortReason));
  return roots.length ? roots : unique.slice(0, 1);
}

function stoppedByAbort(err: unknown, reason: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e === reason || e.name === 'AbortError' || (e as { code?: unknown }).code === 'E_ABORTED') return true;
  }
  return false;
}

export function redactReport(report: RunReport, secrets: SecretRegistry): RunReport {
  return secrets.redactDeep(report);
}

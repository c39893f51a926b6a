import type { Engine } from './engine.js';
import { BackupError } from './errors.js';
import { RunHistory } from './history.js';
import { NotificationStateStore, runNotification } from './notify.js';
import { newReport, reportError, type RunReport } from './report.js';

export interface MissedRun {
  /** The profile whose run did not happen (or the scheduled job's name: `restore-test`, `health`). */
  profile: string;
  /** Where it stopped: `lock` (another run held it past --wait), `start` (the job could not start), `unit`. */
  stage: string;
  error: BackupError;
  /** When the run was due to start. */
  startedAt: Date;
  /** Write a `run` record to the history (for a profile's run; not for other jobs). Default true. */
  history?: boolean;
}

/**
 * Records and alerts a scheduled run that did not happen: the lock stayed held past `--wait`,
 * or the run could not start (a config error, a crash). The history gets a failed `run` record
 * marked `missed`, which `status` sees as the profile's last run, and the notify channels get a
 * failure, so a run that never happens cannot go unnoticed. Resolves with the report sent.
 */
export async function recordMissedRun(engine: Engine, missed: MissedRun): Promise<RunReport> {
  const finished = engine.now();
  const report = newReport(missed.profile, engine.config.host, missed.startedAt, false);
  const error = reportError(missed.stage, missed.error);
  report.errors = [{ ...error, message: engine.secrets.redact(error.message) }];
  report.status = 'failed';
  report.event = 'failure';
  report.finishedAt = finished.toISOString();
  report.durationMs = Math.max(0, finished.getTime() - missed.startedAt.getTime());
  const warn = (what: string) => (err: Error) => engine.logger.warn(`could not ${what} in ${engine.stateDir}: ${err.message}`);
  if (missed.history !== false) {
    const { startedAt, finishedAt, profile, errors } = report;
    const record = { kind: 'run' as const, status: 'failed' as const, missed: true, startedAt, finishedAt, profile, snapshot: null, repository: 'backupRoot', errors };
    await new RunHistory(engine.stateDir).append(record).catch(warn('record the missed run'));
    // The profile's outcome is a failure now: its next success is a recovery, as after a failed run.
    await new NotificationStateStore(engine.stateDir)
      .update((state) => {
        const prev = state.runs[missed.profile];
        state.runs[missed.profile] = { outcome: 'failure', since: prev?.outcome === 'failure' ? prev.since : finishedAt, at: finishedAt };
        if (prev?.outcome !== 'failure') for (const sent of Object.values(state.channels)) delete sent[`run:${missed.profile}`];
      })
      .catch(warn('save the notification state'));
  }
  engine.logger.error(`run not done: profile ${missed.profile}: ${report.errors[0]!.message}`, { profile: missed.profile, event: 'failure' });
  report.notifications = await engine.notify(runNotification(engine.secrets.redactDeep(report), 'failure', finished));
  return report;
}

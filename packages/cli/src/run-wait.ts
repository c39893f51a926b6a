import { BackupError, isBackupError, newReport, parseInterval, recordMissedRun, RunLock, type Engine, type RunOptions, type RunReport } from '@sutazai/backup-core';

/** `--wait DURATION` in milliseconds; a usage error naming the option when it is not a duration. */
export function parseWait(text: string): number {
  const ms = /^\d+$/.test(text.trim()) ? Number(text) * 1000 : parseInterval(text);
  if (ms === undefined) throw new BackupError('E_USAGE', `--wait ${text}: expected a duration like "6h", "90min", "30s" or a number of seconds`);
  return ms;
}

/**
 * `run`, and with `--wait` a run that another run's lock refuses waits for it, then starts (its
 * snapshot is dated when it starts, not when it began waiting). A run that finally does not
 * happen is recorded in the history and alerted (it was scheduled: someone expects it), then
 * fails with E_LOCKED (exit 75). Stopped while waiting, it resolves with a report that says so.
 */
export async function runWaiting(engine: Engine, options: RunOptions, wait: string | undefined): Promise<RunReport> {
  if (wait === undefined) return engine.run(options);
  const waitMs = parseWait(wait);
  const profile = engine.profile(options.profile).name;
  const due = engine.now();
  const deadline = Date.now() + waitMs;
  const lock = new RunLock(engine.stateDir);
  for (;;) {
    try {
      return await engine.run(options);
    } catch (err) {
      if (!isBackupError(err) || err.code !== 'E_LOCKED' || options.dryRun) throw err;
    }
    try {
      await lock.waitUntilFree({
        waitMs: deadline - Date.now(),
        ...(options.signal ? { signal: options.signal } : {}),
        onWait: (held) => engine.logger.warn(`profile ${profile}: waiting up to ${wait} for the lock: ${held.message}`),
      });
    } catch (err) {
      if (isBackupError(err) && err.code === 'E_ABORTED') return stoppedWhileWaiting(engine, profile, due, err);
      if (isBackupError(err) && err.code === 'E_LOCKED') await recordMissedRun(engine, { profile, stage: 'lock', error: err, startedAt: due });
      throw err;
    }
  }
}

function stoppedWhileWaiting(engine: Engine, profile: string, due: Date, err: BackupError): RunReport {
  const report = newReport(profile, engine.config.host, due, false);
  report.status = 'failed';
  report.errors = [{ stage: 'lock', code: err.code, message: err.message }];
  report.finishedAt = engine.now().toISOString();
  return report;
}

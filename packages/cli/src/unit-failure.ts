import { promises as fsp } from 'node:fs';
import { BackupError, recordMissedRun, schedulingOptions, type Engine, type Logger } from '@sutazai/backup-core';
import { unattendedJobs } from './jobs.js';

/**
 * Exit statuses with which the tool has reported the outcome itself: 1 (a failed run alerts, a
 * failed restore test or health check becomes a health condition that `status --notify`
 * alerts), 75 (a run that gave up waiting for the lock is recorded and alerted).
 */
const REPORTED = new Set(['1', '75']);

/**
 * `systemd on-failure UNIT`, run by OnFailure=: alerts the notify channels that a unit failed,
 * unless the tool reported it itself (systemd 251+ says how it ended in MONITOR_*; without them,
 * alert: better twice than never). A profile's unit also gets a missed run in the history.
 */
export async function alertUnitFailure(engine: Engine, logger: Logger, unit: string, env: NodeJS.ProcessEnv): Promise<string> {
  const name = unit.replace(/^sutazai-backup-/, '').replace(/\.service$/, '');
  const job = unattendedJobs(engine.config, schedulingOptions(engine.config).waitMs).find((j) => j.name === name);
  const how = env.MONITOR_EXIT_CODE;
  const status = env.MONITOR_EXIT_STATUS;
  if (how === 'exited' && status && REPORTED.has(status) && name !== 'daemon') {
    logger.info(`${unit} exited with ${status}: the run reported it itself`, { unit });
    return `${unit}: exit status ${status}, already reported by the run`;
  }
  const ended = how ? `${env.MONITOR_SERVICE_RESULT ?? 'failed'}: ${how === 'exited' ? `exit status ${status}` : `${how} by ${status}`}` : 'failed';
  const error = new BackupError('E_INTERNAL', `systemd unit ${unit} ${ended}; see journalctl -u ${unit}`);
  const report = await recordMissedRun(engine, {
    profile: job?.profile ?? name,
    stage: 'unit',
    error,
    startedAt: engine.now(),
    history: Boolean(job?.profile),
  });
  const sent = report.notifications.filter((n) => n.status === 'sent').map((n) => n.channel);
  return `${unit}: ${ended}; alerted ${sent.length ? sent.join(', ') : 'no channel'}`;
}

/** Why an env file is not private (others can read it), or undefined when it is (or is missing). */
export async function exposure(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  const st = await fsp.stat(file).catch(() => undefined);
  if (!st || (st.mode & 0o077) === 0) return undefined;
  return `${file} holds secrets and is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: run \`chmod 600 ${file}\``;
}

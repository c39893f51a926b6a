import { BackupError, isBackupError, realClock, RunLock, schedulingOptions, Scheduler, ScheduleStateStore, type Engine, type Logger } from '@sutazai/backup-core';
import { runJobProcess } from './daemon-job.js';
import { unattendedJobs } from './jobs.js';
import { parseListen, startMetricsServer, type MetricsServer } from './serve.js';

export interface DaemonOptions {
  env: NodeJS.ProcessEnv;
  listen?: string;
  /** The daemon's --log-level, passed on to each job. */
  logLevel?: string;
  onListening?: (address: string) => void;
}

/**
 * The daemon: one per repository (state/daemon.lock), each job a child process of the CLI (the
 * same `run --wait`, `restore-test`, `status --notify` that cron and timers run), one at a time.
 * SIGTERM or SIGINT stop it after the job that runs then has stopped (it gets the signal too).
 */
export async function runDaemon(engine: Engine, logger: Logger, options: DaemonOptions): Promise<void> {
  const jobs = unattendedJobs(engine.config, schedulingOptions(engine.config).waitMs);
  if (!jobs.length) {
    throw new BackupError('E_CONFIG', 'nothing to schedule: no profile has a schedule (add `schedule: "0 2 * * *"` to one), and checks.restoreTest.schedule and checks.schedule are not set');
  }
  const lock = new RunLock(engine.stateDir, 'daemon.lock');
  await lock.acquire('daemon').catch((err: unknown) => {
    if (!isBackupError(err) || err.code !== 'E_LOCKED') throw err;
    throw new BackupError('E_LOCKED', `another daemon runs for ${engine.config.backupRoot}: ${err.message}`, { details: err.details });
  });
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    logger.warn(`received ${signal}: stopping${stop.signal.aborted ? '' : ' once the job that runs now has stopped'}`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let server: MetricsServer | undefined;
  try {
    if (options.listen) {
      const { host, port } = parseListen(options.listen);
      server = await startMetricsServer(engine, logger, host, port);
      options.onListening?.(server.address);
    }
    const byName = new Map(jobs.map((j) => [j.name, j]));
    const scheduler = new Scheduler({
      jobs,
      store: new ScheduleStateStore(engine.stateDir),
      logger,
      clock: realClock(engine.now),
      run: (start, signal) => runJobProcess(engine, logger, { job: byName.get(start.job.name)!, start, signal, env: options.env, logLevel: options.logLevel }),
    });
    logger.info(`daemon started for ${engine.config.file}: ${jobs.map((j) => `${j.name} (${j.schedule})`).join(', ')}`);
    await scheduler.run(stop.signal);
    logger.info('daemon stopped');
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await server?.close();
    await lock.release();
  }
}

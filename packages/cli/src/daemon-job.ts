import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackupError, recordMissedRun, type Engine, type ErrorCode, type JobOutcome, type JobStart, type Logger } from '@sutazai/backup-core';
import type { UnattendedJob } from './jobs.js';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bin.js');
/** A job that has not stopped this long after SIGTERM is killed (its own grace is 10 s). */
const KILL_AFTER_MS = 30_000;

export interface JobProcess {
  job: UnattendedJob;
  start: JobStart;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  logLevel?: string | undefined;
}

/** What a job printed with --json: its result, or `{ error }` when it failed before having one. */
type JobDocument = {
  error?: { code?: string; message?: string };
  snapshot?: string | null;
  healthy?: boolean;
  ok?: boolean;
  errors?: { plugin?: string; stage?: string; message?: string }[];
};

/**
 * Runs one job as a child process of the CLI, as cron or a timer would, and says how it went.
 * Exit 1 and 75 were reported by the job itself (a failed run alerts; a run that gave up waiting
 * for the lock is recorded and alerted); a job that could not start (exit 2: the rc file broke
 * since the daemon started, say) or that died is recorded and alerted here. Stops the job
 * (SIGTERM) when the daemon stops.
 */
export async function runJobProcess(engine: Engine, logger: Logger, p: JobProcess): Promise<JobOutcome> {
  const { job, start } = p;
  const startedAt = engine.now();
  const args = [BIN, ...job.args, '--config', engine.config.file ?? '.sutazai-backuprc', '--json', ...(p.logLevel ? ['--log-level', p.logLevel] : [])];
  // A rehearsal's shifted clock (SUTAZAI_BACKUP_NOW) goes on where the daemon's is now, not where it started.
  const env = { ...p.env, ...(p.env.SUTAZAI_BACKUP_NOW ? { SUTAZAI_BACKUP_NOW: startedAt.toISOString() } : {}) };
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env });
  logger.info(`${job.name}: started${start.catchUp ? ' (catching up a run missed while the daemon was down)' : ''}, pid ${child.pid}`, { job: job.name, slot: start.slot.toISOString() });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS).unref();
  };
  p.signal.addEventListener('abort', stop, { once: true });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('error', (err) => {
      out = JSON.stringify({ error: { code: 'E_INTERNAL', message: `could not start ${process.execPath}: ${err.message}` } });
    });
    child.once('close', (c, s) => resolve([c, s]));
  });
  p.signal.removeEventListener('abort', stop);
  clearTimeout(killTimer);
  const doc = parse(out);
  if (code === 0) return { status: 'success', ...(doc?.snapshot ? { detail: `snapshot ${doc.snapshot}` } : {}) };
  if (p.signal.aborted && (signal !== null || code === 143 || code === 130)) return { status: 'stopped', detail: 'stopped with the daemon' };
  const detail = describe(doc, code, signal);
  if (code === 1 || code === 75) return { status: 'failed', detail };
  const error = new BackupError((doc?.error?.code as ErrorCode | undefined) ?? 'E_INTERNAL', `${job.args.join(' ')}: ${detail}`);
  await recordMissedRun(engine, { profile: job.profile ?? job.name, stage: 'start', error, startedAt, history: Boolean(job.profile) }).catch((err: Error) =>
    logger.error(`${job.name}: could not record or alert the failure: ${err.message}`),
  );
  return { status: 'failed', detail };
}

function parse(text: string): JobDocument | undefined {
  try {
    return JSON.parse(text) as JobDocument;
  } catch {
    return undefined;
  }
}

function describe(doc: JobDocument | undefined, code: number | null, signal: NodeJS.Signals | null): string {
  const how = signal ? `killed by ${signal}` : `exit ${code}`;
  if (doc?.error?.message) return `${how}: ${doc.error.message}`;
  const first = doc?.errors?.[0];
  if (first?.message) return `${how}: ${first.plugin ? `${first.plugin} ` : ''}(${first.stage ?? 'run'}) ${first.message}`;
  if (doc?.healthy === false) return `${how}: unhealthy`;
  return how;
}

import type { ChildProcess } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { BackupError, type ErrorCode } from './errors.js';
import type { Logger } from './log.js';
import { markReadFromStart } from './pipeline/read-from-start.js';
import type { SecretRegistry } from './secrets.js';
import { launchChild, type ChildEnv, type ChildOutcome, type OutputTail } from './child/launch.js';

export {
  childEnvironment,
  launchChild,
  OutputTail,
  runChildSync,
  STDERR_TAIL_BYTES,
  type ChildEnv,
  type ChildOutcome,
  type LaunchedChild,
  type LaunchOptions,
} from './child/launch.js';
export { ProgramStream, runProgram } from './pipeline/program-stream.js';

export interface Child {
  process: ChildProcess;
  /**
   * The program's stdout (unless `stdout: 'ignore'`), read from the start: Node drops what a
   * child printed if nobody reads its stdout by the time it exits, and a quick program can exit
   * before its consumer is ready. Destroying it before its end stops the program (SIGTERM).
   */
  stdout: Readable | undefined;
  stderr: OutputTail;
  /** Sends `signal` (SIGTERM by default) to the program, or to its whole process group with `group`. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the program exited 0; rejects (naming what ran, with its stderr tail, redacted) otherwise. */
  exited: Promise<void>;
}

export interface ChildOptions {
  /** What the program needs beyond the minimal environment (see `childEnvironment`); nothing else of ours is passed on. */
  env?: ChildEnv | undefined;
  /** What this is, for messages: `sources.app-db: pg_dump of database "app"`. */
  what: string;
  /** The error code of a failure (E_SOURCE for a dump, E_RESTORE for a restore, ...). */
  code: ErrorCode;
  secrets: SecretRegistry;
  /** Where the command line is logged (debug); none for a probe. */
  logger?: Logger | undefined;
  /** Stops the program (SIGTERM) when aborted; it then fails with E_ABORTED. */
  signal?: AbortSignal | undefined;
  cwd?: string | undefined;
  stdin?: 'pipe' | 'ignore';
  stdout?: 'pipe' | 'ignore';
  /**
   * Run the program in a process group of its own, and stop the whole group: for shell lines and
   * scripts whose own children would otherwise keep running (and keep stdout open) after it.
   */
  group?: boolean;
}

/**
 * Starts a program for a plugin (a dump, a restore, a check). Its arguments are logged at debug
 * level, redacted, so secrets belong in `env` or a file, never in `args`. `name` is how messages
 * call it (`pg_dump`). A failure's details hold `spawnError` (`ENOENT`: not installed) when the
 * program could not be started.
 */
export function startChild(program: { path: string; name: string }, args: readonly string[], options: ChildOptions): Child {
  const launched = launchChild(program.path, args, {
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin ?? 'ignore',
    stdout: options.stdout ?? 'pipe',
    group: options.group,
    signal: options.signal,
    logger: options.logger,
    secrets: options.secrets,
  });
  const { process: child, kill } = launched;
  let stdout: PassThrough | undefined;
  if (child.stdout) {
    stdout = child.stdout.pipe(new PassThrough({ highWaterMark: 1024 * 1024 }));
    markReadFromStart(stdout);
    // A consumer that failed the stream after reading it all (the program then exited non-zero)
    // may have stopped listening: `exited` reports the failure; the stream must not crash us.
    stdout.on('error', () => undefined);
    stdout.once('close', () => {
      // The consumer gave up (another artifact failed, the run was interrupted): stop the program
      // rather than leave it writing into a pipe nobody reads.
      if (!stdout!.readableEnded && child.exitCode === null && child.signalCode === null) kill();
    });
  }
  const exited = launched.outcome.then((outcome) => {
    if (outcome.code === 0 && !outcome.error) return;
    // We stopped it: the reason the run was aborted is reported elsewhere.
    if (options.signal?.aborted) throw new BackupError('E_ABORTED', `${options.what}: stopped because the run was aborted`);
    throw childFailure(program, outcome, options);
  });
  // Callers attach their own handlers; this one keeps an unobserved failure from crashing the process.
  exited.catch(() => undefined);
  return { process: child, stdout, stderr: launched.stderr, kill, exited };
}

function childFailure(program: { path: string; name: string }, o: ChildOutcome, options: ChildOptions): BackupError {
  const how = o.error ? `could not be run (${o.error.message})` : o.signal ? `was killed by ${o.signal}` : `exited with code ${o.code}`;
  const tail = o.stderr.trim();
  return new BackupError(options.code, options.secrets.redact(`${options.what} failed: ${program.name} ${how}${tail ? `: ${tail}` : ''}`), {
    details: { program: program.path, exitCode: o.code, signal: o.signal, ...(o.error?.code ? { spawnError: o.error.code } : {}) },
  });
}

/**
 * Runs a program to the end, feeding `input` on stdin if given; resolves with its stdout. When the
 * program fails because its input failed (an artifact that does not decode), the input's error is
 * the one reported.
 */
export async function runChild(program: { path: string; name: string }, args: readonly string[], options: ChildOptions & { input?: Readable }): Promise<string> {
  const child = startChild(program, args, { ...options, stdin: options.input ? 'pipe' : 'ignore' });
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const fed = options.input ? feedChild(options.input, child) : Promise.resolve(undefined);
  try {
    await child.exited;
  } catch (err) {
    throw (await fed) ?? err;
  }
  return stdout;
}

/**
 * Pipes a stream into a child's stdin; resolves with the input's error, if it failed. A program may
 * stop reading early on purpose (`pg_restore --list` reads only the table of contents): EPIPE then
 * is not an error, and the rest of the input is dropped. An input that fails kills the child, so
 * it cannot finish on partial data.
 */
export function feedChild(input: Readable, child: Child): Promise<Error | undefined> {
  const stdin = child.process.stdin!;
  return new Promise((resolve) => {
    let failed: Error | undefined;
    stdin.on('error', () => input.destroy());
    input.on('error', (err) => {
      failed ??= err;
      child.kill();
      stdin.destroy();
    });
    child.process.once('close', () => {
      input.destroy();
      // Let an error the input raised while being torn down arrive first.
      setImmediate(() => resolve(failed));
    });
    input.pipe(stdin);
  });
}

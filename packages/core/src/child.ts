import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { BackupError, type ErrorCode } from './errors.js';
import type { Logger } from './log.js';
import { markReadFromStart } from './pipeline/read-from-start.js';
import type { SecretRegistry } from './secrets.js';

const TAIL_BYTES = 4096;

/**
 * What a child gets of the tool's environment whatever it runs: enough to find programs, a home,
 * the user's name, the locale, the time zone and the temporary folder. Never the rest: the tool's
 * environment holds its secrets (the encryption passphrase, a webhook's secret), and a child's
 * environment can be read by its user in /proc/<pid>/environ for as long as it runs.
 */
const MINIMAL_ENV = /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR)$/;

/** A child's own environment: what it needs beyond the minimal set (its connection settings, its own secret). `undefined` leaves a variable out. */
export type ChildEnv = Readonly<Record<string, string | undefined>>;

/** The minimal set of the tool's environment, plus `env` (which wins). */
export function childEnvironment(env: ChildEnv = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && MINIMAL_ENV.test(name)) out[name] = value;
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete out[name];
    else out[name] = value;
  }
  return out;
}

/** Node's spawn with the child's environment made by `childEnvironment`: every program the tool runs starts here. */
export function spawnProgram(command: string, args: readonly string[], options: Omit<SpawnOptions, 'env'> & { env?: ChildEnv | undefined }): ChildProcess {
  const { env, ...rest } = options;
  return spawn(command, args, { ...rest, env: childEnvironment(env) });
}

/** The last few KB a child wrote on stderr: enough for its error message, never its whole chatter. */
export class OutputTail {
  #text = '';

  push(chunk: Buffer): void {
    this.#text = (this.#text + chunk.toString('utf8')).slice(-TAIL_BYTES);
  }

  toString(): string {
    return this.#text.trim();
  }
}

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
  logger: Logger;
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
 * call it (`pg_dump`).
 */
export function startChild(program: { path: string; name: string }, args: readonly string[], options: ChildOptions): Child {
  options.logger.debug(options.secrets.redact(`running ${program.path} ${args.join(' ')}`));
  const child = spawnProgram(program.path, args, {
    env: options.env,
    cwd: options.cwd,
    stdio: [options.stdin ?? 'ignore', options.stdout ?? 'pipe', 'pipe'],
    detached: options.group === true,
  });
  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    if (options.group && child.pid !== undefined) {
      try {
        process.kill(-child.pid, signal);
        return;
      } catch {
        // The group is gone already; the program itself may not be.
      }
    }
    child.kill(signal);
  };
  const stderr = new OutputTail();
  child.stderr!.on('data', (b: Buffer) => stderr.push(b));
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
  const onAbort = () => kill();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const exited = new Promise<void>((resolve, reject) => {
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));
    child.once('close', (code, signal) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (code === 0 && !spawnError) return resolve();
      if (options.signal?.aborted) {
        // We stopped it: the reason the run was aborted is reported elsewhere.
        return reject(new BackupError('E_ABORTED', `${options.what}: stopped because the run was aborted`));
      }
      const how = spawnError ? `could not be run (${spawnError.message})` : signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const tail = stderr.toString();
      reject(
        new BackupError(options.code, options.secrets.redact(`${options.what} failed: ${program.name} ${how}${tail ? `: ${tail}` : ''}`), {
          details: { program: program.path, exitCode: code, signal },
        }),
      );
    });
  });
  // Callers attach their own handlers; this one keeps an unobserved failure from crashing the process.
  exited.catch(() => undefined);
  return { process: child, stdout, stderr, kill, exited };
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

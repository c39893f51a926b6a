import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from '../log.js';
import { secrets as processSecrets, type SecretRegistry } from '../secrets.js';

/**
 * How much of a program's stderr is kept: the end, where a failing program says why. 4 KiB is
 * the last fifty-odd lines, twice ssh's changed-host-key banner (about 1.5 KiB, the longest
 * failure a plugin parses), and it is what an error message quotes: a chatty program must not
 * make a run report, a log line or an alert many kilobytes long.
 */
export const STDERR_TAIL_BYTES = 4096;

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

/** The last STDERR_TAIL_BYTES a child wrote: enough for its error message, never its whole chatter. */
export class OutputTail {
  readonly #decoder = new StringDecoder('utf8');
  #text = '';

  push(chunk: Buffer): void {
    this.#text = (this.#text + this.#decoder.write(chunk)).slice(-STDERR_TAIL_BYTES);
  }

  /** The tail as written (for parsers that look at its lines). */
  get text(): string {
    return this.#text;
  }

  toString(): string {
    return this.#text.trim();
  }
}

/** How a program ended. */
export interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The end of what it wrote on stderr (STDERR_TAIL_BYTES). */
  stderr: string;
  /** What it wrote on `statusFd` (e.g. gpg's `[GNUPG:]` lines). */
  status: string;
  /** Why it could not be started (`code: 'ENOENT'`: not installed), when it could not. */
  error?: NodeJS.ErrnoException;
}

export interface LaunchOptions {
  /** What the program needs beyond the minimal environment (see `childEnvironment`); nothing else of ours is passed on. */
  env?: ChildEnv | undefined;
  cwd?: string | undefined;
  /** A pipe (`process.stdin`), nothing, or an open file descriptor the program reads. Default: nothing. */
  stdin?: 'pipe' | 'ignore' | number;
  /** A pipe (`process.stdout`), nothing, or a file descriptor the program writes to. Default: a pipe. */
  stdout?: 'pipe' | 'ignore' | number;
  /** Bytes written to extra pipes, which are then closed: `{ 3: passphrase }` for `--passphrase-fd 3`. */
  inputs?: Readonly<Record<number, Buffer>> | undefined;
  /** A pipe the program writes status lines to, collected into `ChildOutcome.status`. */
  statusFd?: number | undefined;
  /**
   * Run the program in a process group of its own, and stop the whole group: for shell lines and
   * scripts whose own children would otherwise keep running (and keep stdout open) after it.
   */
  group?: boolean | undefined;
  /** Stops the program (SIGTERM, or the group) when aborted. */
  signal?: AbortSignal | undefined;
  /**
   * When the outcome settles: `close` (default), once the program exited and its pipes closed;
   * `exit`, as soon as it exited, for a program that leaves a background child holding its
   * pipes (`ssh -f`). The pipes are then closed on our side.
   */
  waitFor?: 'close' | 'exit';
  /** Logs the command line at debug level, redacted: secrets belong in `env`, a file or `inputs`, never in `args`. */
  logger?: Logger | undefined;
  /** What the command line is redacted with; default the process's registry. */
  secrets?: SecretRegistry | undefined;
}

export interface LaunchedChild {
  readonly process: ChildProcess;
  readonly stderr: OutputTail;
  /** Sends `signal` (SIGTERM by default) to the program, or to its whole process group with `group`. */
  kill(signal?: NodeJS.Signals): void;
  /** How it ended; never rejects (a program that could not start has `error`). */
  readonly outcome: Promise<ChildOutcome>;
}

/**
 * Starts a program: the one place the tool and its plugins start one. It gets the minimal
 * environment plus `options.env`, its stderr tail is kept, extra pipes get their bytes, and an
 * abort stops it (its process group with `group`). The shapes callers use are built on this:
 * `startChild`/`runChild` (a dump, a restore, a check), `ProgramRun` (a pipeline stage reading a
 * FIFO), `ProgramStream` (a stage as a Duplex), and plugins that parse an outcome themselves.
 */
export function launchChild(command: string, args: readonly string[], options: LaunchOptions = {}): LaunchedChild {
  options.logger?.debug((options.secrets ?? processSecrets).redact(`running ${command} ${args.join(' ')}`));
  const child = spawn(command, args, {
    env: childEnvironment(options.env),
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    stdio: stdioFor(options),
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
  let status = '';
  if (options.statusFd !== undefined) (child.stdio[options.statusFd] as Readable).on('data', (d: Buffer) => (status += d.toString('utf8')));
  for (const [fd, bytes] of Object.entries(options.inputs ?? {})) {
    const pipe = child.stdio[Number(fd)] as Writable;
    pipe.on('error', () => {});
    pipe.end(bytes);
  }
  // The program may stop reading early (a wrong passphrase, `pg_restore --list`): its exit status says why, not EPIPE.
  child.stdin?.on('error', () => {});
  const onAbort = () => kill();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const outcome = new Promise<ChildOutcome>((resolve) => {
    let error: NodeJS.ErrnoException | undefined;
    const settle = (code: number | null, signal: NodeJS.Signals | null) => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ code, signal, stderr: stderr.text, status, ...(error ? { error } : {}) });
    };
    child.once('error', (err) => {
      error = err;
      if (options.waitFor === 'exit') settle(null, null);
    });
    if (options.waitFor === 'exit') {
      child.once('exit', (code, signal) => {
        settle(code, signal);
        for (const pipe of child.stdio) pipe?.destroy();
      });
    } else child.once('close', settle);
  });
  return { process: child, stderr, kill, outcome };
}

function stdioFor(options: LaunchOptions): StdioOptions {
  const extra = [...Object.keys(options.inputs ?? {}).map(Number), ...(options.statusFd !== undefined ? [options.statusFd] : [])];
  return Array.from({ length: Math.max(3, ...extra.map((fd) => fd + 1)) }, (_v, i) => {
    if (i === 0) return options.stdin ?? 'ignore';
    if (i === 1) return options.stdout ?? 'pipe';
    return i === 2 || extra.includes(i) ? 'pipe' : 'ignore';
  });
}

/**
 * Runs a program to the end synchronously, its output ignored: only where nothing may wait (a
 * process 'exit' handler stopping a gpg agent, a one-time probe). Resolves with its exit status.
 */
export function runChildSync(command: string, args: readonly string[], options: { env?: ChildEnv; timeoutMs?: number } = {}): number | null {
  return spawnSync(command, args, { stdio: 'ignore', env: childEnvironment(options.env), ...(options.timeoutMs ? { timeout: options.timeoutMs } : {}) }).status;
}

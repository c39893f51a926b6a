import type { ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { launchChild, runChildSync, type ChildEnv, type ChildOutcome } from '../child/launch.js';

/** How a program ended, for deciding whether its output can be trusted. */
export type ProgramOutcome = ChildOutcome;

/**
 * An external program that turns bytes on its stdin into bytes on its stdout (an encryption or
 * decryption stage), run by the pipeline itself: it reads the artifact file directly when
 * decoding, and its output is read in place, without a stream stage per chunk.
 */
export interface ProgramSpec {
  command: string;
  args: string[];
  /** What the program needs beyond the minimal environment (see `childEnvironment`); nothing else is inherited. */
  env: ChildEnv;
  /** Bytes written to extra pipes, which are then closed: `{ 3: passphrase }` for `--passphrase-fd 3`. */
  inputs?: Record<number, Buffer>;
  /** A pipe the program writes status lines to, collected into `ProgramOutcome.status`. */
  statusFd?: number;
  /** Whether the program succeeded: undefined, or the error the stage fails with. */
  check(outcome: ProgramOutcome): Error | undefined;
}

const READ_BUFFER = 1024 * 1024;

/**
 * A running ProgramSpec. Its stdin is a pipe (`stdin()`) or an open file; its stdout is a FIFO
 * read with one reused buffer (a child's stdout stream costs a Buffer and a stream round per
 * 64 KiB: about four times the CPU). `onOutput` gets each piece as a view valid only during the
 * call; returning false pauses the output until `resume()`.
 */
export class ProgramRun {
  readonly #child: ChildProcess;
  readonly #output: net.Socket;
  readonly #done: Promise<void>;
  #failure: Error | undefined;

  constructor(spec: ProgramSpec, options: { stdin: number | 'pipe'; onOutput(data: Buffer): boolean | void }) {
    const { read, write } = fifo();
    let launched: ReturnType<typeof launchChild>;
    try {
      launched = launchChild(spec.command, spec.args, { env: spec.env, stdin: options.stdin, stdout: write, inputs: spec.inputs, statusFd: spec.statusFd });
    } catch (err) {
      closeSync(read);
      throw err;
    } finally {
      closeSync(write);
    }
    this.#child = launched.process;
    const buffer = Buffer.allocUnsafe(READ_BUFFER);
    // `onread` is documented for sockets (net.connect) and works for a wrapped fd too; the
    // constructor's typings leave it out.
    this.#output = new net.Socket({
      fd: read,
      readable: true,
      writable: false,
      onread: {
        buffer,
        callback: (n: number, buf: Uint8Array) => {
          if (this.#failure) return false;
          try {
            return options.onOutput(Buffer.from(buf.buffer, buf.byteOffset, n)) !== false;
          } catch (err) {
            this.fail(err as Error);
            return false;
          }
        },
      },
    } as net.SocketConstructorOpts);
    // 'close' follows the end of the output, an error, or fail().
    const outputClosed = new Promise<void>((resolve) => this.#output.once('close', () => resolve()));
    this.#output.on('error', (err) => this.fail(err));
    const exited = launched.outcome.then((outcome) => {
      if (outcome.error) throw new Error(`${spec.command} could not be started: ${outcome.error.message}`);
      return outcome;
    });
    this.#done = (async () => {
      const [outcome] = await Promise.all([exited, outputClosed]);
      if (this.#failure) throw this.#failure;
      const error = spec.check(outcome);
      if (error) throw error;
    })();
    this.#done.catch(() => {});
  }

  /** The program's stdin, when it was started with `stdin: 'pipe'`. */
  get stdin(): Writable {
    return this.#child.stdin!;
  }

  resume(): void {
    this.#output.resume();
  }

  /** Settles when the program has exited and its output ended: rejects with `check`'s error, or the first failure. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Stops the program: `done` then rejects with `err`. */
  fail(err: Error): void {
    this.#failure ??= err;
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    this.#output.destroy();
  }
}

/**
 * A FIFO for a program's stdout: the read end (non-blocking, for a net.Socket) and a write end to
 * hand to the child. The FIFO lives in a private folder that is gone once both ends are open.
 */
function fifo(): { read: number; write: number } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sutazai-fifo-'));
  try {
    const file = path.join(dir, 'out');
    if (runChildSync('mkfifo', ['-m', '600', file]) !== 0) throw new Error(`mkfifo ${file} failed`);
    // Opening the read end first (non-blocking) lets the write end open at once.
    const read = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      return { read, write: openSync(file, constants.O_WRONLY) };
    } catch (err) {
      closeSync(read);
      throw err;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

import type { ChildProcess } from 'node:child_process';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { spawnProgram, type ProgramOutcome, type ProgramSpec } from '@sutazai/backup-core';

/**
 * How a child process ended, and how to run one: core's ProgramOutcome and ProgramSpec (the
 * pipeline runs the same spec itself when a stage is alone), under the names this module exported.
 */
export type ChildOutcome = ProgramOutcome;
export type ChildStreamOptions = ProgramSpec;

const STDERR_KEEP = 16 * 1024;
/** How much may wait in the child's stdin before a write waits for it to drain (its own mark is 16 KiB: a round trip per chunk). */
const STDIN_BUFFER = 1024 * 1024;

/**
 * A child process as a Duplex: what is written goes to its stdin, what it prints on stdout is
 * read. The readable side ends only after the child exited and `check` accepted how: a child
 * that fails (a decryption whose integrity check fails at the very end) makes the stream error
 * instead of ending, so a consumer never sees a clean end of bad output. Destroying the stream
 * kills the child.
 */
export class ChildProcessStream extends Duplex {
  readonly #child: ChildProcess;
  readonly #stdin: Writable;
  readonly #stdout: Readable;
  #stderr = '';
  #status = '';
  #stdinClosed = false;
  #releaseWrite: (() => void) | undefined;

  constructor(options: ChildStreamOptions) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    const fds = [...Object.keys(options.inputs ?? {}).map(Number), ...(options.statusFd !== undefined ? [options.statusFd] : [])];
    const stdio = Array.from({ length: Math.max(3, ...fds.map((fd) => fd + 1)) }, (_v, i) => (i < 3 || fds.includes(i) ? 'pipe' : 'ignore'));
    this.#child = spawnProgram(options.command, options.args, { env: options.env, stdio: stdio as ('pipe' | 'ignore')[] });
    this.#stdin = this.#child.stdin!;
    this.#stdout = this.#child.stdout!;
    this.#child.on('error', (err) => this.destroy(new Error(`${options.command} could not be started: ${err.message}`)));

    for (const [fd, bytes] of Object.entries(options.inputs ?? {})) {
      const pipe = this.#child.stdio[Number(fd)] as Writable;
      pipe.on('error', () => {});
      pipe.end(bytes);
    }
    if (options.statusFd !== undefined) {
      (this.#child.stdio[options.statusFd] as Readable).on('data', (d: Buffer) => (this.#status += d.toString('utf8')));
    }
    this.#child.stderr!.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString('utf8')).slice(-STDERR_KEEP);
    });
    // The child may stop reading early (a wrong passphrase): its exit status says why, not EPIPE.
    this.#stdin.on('error', () => this.#closeStdin());
    this.#stdin.on('close', () => this.#closeStdin());
    this.#stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) this.#stdout.pause();
    });
    this.#child.on('close', (code, signal) => {
      if (this.destroyed) return;
      const error = options.check({ code, signal, stderr: this.#stderr, status: this.#status });
      if (error) this.destroy(error);
      else this.push(null);
    });
  }

  #closeStdin(): void {
    this.#stdinClosed = true;
    const release = this.#releaseWrite;
    this.#releaseWrite = undefined;
    release?.();
  }

  override _read(): void {
    this.#stdout.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#stdinClosed) return callback();
    if (this.#stdin.write(chunk) || this.#stdin.writableLength < STDIN_BUFFER) return callback();
    this.#releaseWrite = () => callback();
    this.#stdin.once('drain', () => {
      const release = this.#releaseWrite;
      this.#releaseWrite = undefined;
      release?.();
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#stdinClosed) this.#stdin.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    this.#closeStdin();
    callback(error);
  }
}

/** Runs a child to completion with `input` on stdin, and resolves with its stdout once `check` accepted how it ended. */
export async function runChild(options: ChildStreamOptions & { input?: Buffer }): Promise<Buffer> {
  const stream = new ChildProcessStream(options);
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
  stream.end(options.input ?? Buffer.alloc(0));
  return done;
}

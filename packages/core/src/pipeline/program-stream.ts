import type { ChildProcess } from 'node:child_process';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { launchChild } from '../child/launch.js';
import type { ProgramSpec } from './program.js';

/** How much may wait in the child's stdin before a write waits for it to drain (its own mark is 16 KiB: a round trip per chunk). */
const STDIN_BUFFER = 1024 * 1024;

/**
 * A ProgramSpec as a Duplex stream stage: what is written goes to the program's stdin, what it
 * prints on stdout is read. The readable side ends only after the program exited and `check`
 * accepted how: a program that fails (a decryption whose integrity check fails at the very end)
 * makes the stream error instead of ending, so a consumer never sees a clean end of bad output.
 * Destroying the stream kills the program. (`ProgramRun` runs the same spec faster when the
 * pipeline drives it alone.)
 */
export class ProgramStream extends Duplex {
  readonly #child: ChildProcess;
  readonly #stdin: Writable;
  readonly #stdout: Readable;
  #stdinClosed = false;
  #releaseWrite: (() => void) | undefined;

  constructor(spec: ProgramSpec) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    const launched = launchChild(spec.command, spec.args, { env: spec.env, stdin: 'pipe', stdout: 'pipe', inputs: spec.inputs, statusFd: spec.statusFd });
    this.#child = launched.process;
    this.#stdin = this.#child.stdin!;
    this.#stdout = this.#child.stdout!;
    this.#stdin.on('error', () => this.#closeStdin());
    this.#stdin.on('close', () => this.#closeStdin());
    this.#stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) this.#stdout.pause();
    });
    void launched.outcome.then((outcome) => {
      if (this.destroyed) return;
      if (outcome.error) return void this.destroy(new Error(`${spec.command} could not be started: ${outcome.error.message}`));
      const error = spec.check(outcome);
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

/** Runs a ProgramSpec to the end with `input` on stdin; resolves with its stdout once `check` accepted how it ended. */
export async function runProgram(spec: ProgramSpec & { input?: Buffer }): Promise<Buffer> {
  const stream = new ProgramStream(spec);
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
  stream.end(spec.input ?? Buffer.alloc(0));
  return done;
}

import { createHash, type Hash } from 'node:crypto';
import type { promises as fsp } from 'node:fs';
import type { Writable } from 'node:stream';
import type { ChunkEncoder } from './chunk-stages.js';

/**
 * Where an encoder puts the stored bytes: it fills buffers it borrows with `acquire` and hands
 * them back with `submit`. Borrowing the buffers the file is written from saves a copy per byte
 * and keeps memory flat (a few buffers, reused).
 */
export interface ArtifactOutput {
  /** A buffer to fill; waits while every buffer is still being written. */
  acquire(): Promise<Buffer>;
  /** Hands back `buffer` holding `length` bytes to store, in order. */
  submit(buffer: Buffer, length: number): void;
  /** Waits until everything submitted is stored (and durable, for a file). */
  finish(): Promise<void>;
  /** Stops early after a failure: waits for writes in flight, without syncing. */
  abort(): Promise<void>;
  readonly bytes: number;
}

const BUFFER_SIZE = 2 * 1024 * 1024;
const BUFFERS = 4;
/** Flush to disk in the background every this many bytes, so the final fsync is short. */
const SYNC_EVERY = 64 * 1024 * 1024;

/**
 * Writes an artifact into an open file with positional writes from a small pool of buffers,
 * hashing the bytes (sha256) as they are submitted, and fsyncs it at the end. Earlier parts are
 * flushed (fdatasync) in the background while later ones are still being produced. The caller
 * closes the handle.
 *
 * With a `transform` (in-process encryption), each submitted buffer is transformed first and its
 * output hashed and written; the pooled buffer is reused only once that output is written, so
 * memory stays bounded the same way.
 */
export class ArtifactFile implements ArtifactOutput {
  readonly #handle: fsp.FileHandle;
  readonly #transform: ChunkEncoder | undefined;
  readonly #hash: Hash = createHash('sha256');
  readonly #free: Buffer[] = [];
  readonly #waiting: ((b: Buffer) => void)[] = [];
  readonly #writes = new Set<Promise<void>>();
  #allocated = 0;
  #position = 0;
  #unsynced = 0;
  #sync: Promise<void> | undefined;
  #error: unknown;
  #digest: string | undefined;
  /** Writes in the order they were issued, to know how long the fully written prefix is. */
  readonly #issued: { end: number; done: boolean }[] = [];
  readonly #onStored: ((bytes: number) => void) | undefined;

  /** `onStored` is told each time the fully written prefix of the file grows (its length). */
  constructor(handle: fsp.FileHandle, transform?: ChunkEncoder, options: { onStored?: (bytes: number) => void } = {}) {
    this.#handle = handle;
    this.#transform = transform;
    this.#onStored = options.onStored;
  }

  get bytes(): number {
    return this.#position;
  }

  /** The hex sha256 of what was written; valid after `finish`. */
  get sha256(): string {
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }

  acquire(): Promise<Buffer> {
    if (this.#error) return Promise.reject(this.#error);
    const free = this.tryAcquire();
    if (free) return Promise.resolve(free);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** A buffer to fill if one is free now, else undefined. */
  tryAcquire(): Buffer | undefined {
    if (this.#error) throw this.#error;
    const free = this.#free.pop();
    if (free) return free;
    if (this.#allocated < BUFFERS) {
      this.#allocated++;
      return Buffer.allocUnsafe(BUFFER_SIZE);
    }
    return undefined;
  }

  submit(buffer: Buffer, length: number): void {
    if (length === 0) {
      this.#release(buffer);
      return;
    }
    let data = buffer.subarray(0, length);
    if (this.#transform) {
      try {
        data = this.#transform.update(data);
      } catch (err) {
        this.#error ??= err;
        this.#release(buffer);
        return;
      }
      if (data.length === 0) {
        this.#release(buffer);
        return;
      }
    }
    this.#write(data, buffer);
  }

  /**
   * Hashes `data` and writes it at the end of the file; `buffer` (if any) returns to the pool once
   * written, and a transform's output goes back to the transform.
   */
  #write(data: Buffer, buffer: Buffer | undefined): void {
    const length = data.length;
    this.#hash.update(data);
    const position = this.#position;
    this.#position += length;
    const issued = { end: this.#position, done: false };
    if (this.#onStored) this.#issued.push(issued);
    const write = writeAt(this.#handle, data, position).then(
      () => {
        this.#writes.delete(write);
        this.#released(data, buffer);
        if (this.#onStored) this.#written(issued);
      },
      (err: unknown) => {
        this.#writes.delete(write);
        this.#error ??= err;
        this.#released(data, buffer);
      },
    );
    this.#writes.add(write);
    this.#unsynced += length;
    if (this.#unsynced >= SYNC_EVERY && !this.#sync) {
      this.#unsynced = 0;
      const sync = Promise.all([...this.#writes]).then(() => this.#handle.datasync());
      this.#sync = sync.then(
        () => {
          this.#sync = undefined;
        },
        (err: unknown) => {
          this.#sync = undefined;
          this.#error ??= err;
        },
      );
    }
  }

  #released(data: Buffer, buffer: Buffer | undefined): void {
    if (this.#transform) this.#transform.release?.(data);
    if (buffer) this.#release(buffer);
  }

  #release(buffer: Buffer): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter(buffer);
    else this.#free.push(buffer);
  }

  #written(issued: { end: number; done: boolean }): void {
    issued.done = true;
    let stored: number | undefined;
    while (this.#issued[0]?.done) stored = this.#issued.shift()!.end;
    if (stored !== undefined) this.#onStored!(stored);
  }

  async finish(): Promise<void> {
    if (this.#transform && !this.#error) {
      try {
        const tail = this.#transform.final();
        if (tail.length) this.#write(tail, undefined);
      } catch (err) {
        this.#error ??= err;
      }
    }
    await this.#drain();
    if (this.#error) throw this.#error;
    await this.#handle.sync();
  }

  async abort(): Promise<void> {
    await this.#drain();
  }

  async #drain(): Promise<void> {
    while (this.#writes.size || this.#sync) await Promise.all([...this.#writes, this.#sync]);
  }
}

async function writeAt(handle: fsp.FileHandle, data: Buffer, position: number): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, position + offset);
    offset += bytesWritten;
  }
}

/**
 * Hands the stored bytes to a stream (the stages after compression, e.g. encryption), with its
 * backpressure. Buffers are not reused: the stream keeps what it is given.
 */
export class StreamOutput implements ArtifactOutput {
  readonly #stream: Writable;
  readonly #finished: Promise<void>;
  bytes = 0;

  /** `finished` settles when everything downstream has finished (or failed). */
  constructor(stream: Writable, finished: Promise<void>) {
    this.#stream = stream;
    this.#finished = finished;
    finished.catch(() => {});
  }

  async acquire(): Promise<Buffer> {
    if (this.#stream.writableNeedDrain) {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: unknown) => {
          this.#stream.off('drain', onDrain);
          if (err) reject(err);
          else resolve();
        };
        const onDrain = () => done();
        this.#stream.once('drain', onDrain);
        this.#finished.then(() => done(new Error('the output stream ended early')), done);
      });
    }
    return Buffer.allocUnsafe(256 * 1024);
  }

  submit(buffer: Buffer, length: number): void {
    if (length === 0) return;
    this.bytes += length;
    this.#stream.write(buffer.subarray(0, length));
  }

  async finish(): Promise<void> {
    this.#stream.end();
    await this.#finished;
  }

  async abort(): Promise<void> {
    this.#stream.destroy();
    await this.#finished.catch(() => {});
  }
}

const PIPE_BUFFER_SIZE = 1024 * 1024;

/**
 * Hands the stored bytes to a pipe (a program's stdin, e.g. gpg) from a small pool of buffers: a
 * buffer is reused once the pipe has flushed it, so memory stays flat and nothing is allocated
 * per chunk.
 */
export class PipeOutput implements ArtifactOutput {
  readonly #pipe: Writable;
  readonly #free: Buffer[] = [];
  readonly #waiting: { resolve: (b: Buffer) => void; reject: (err: unknown) => void }[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #allocated = 0;
  #error: unknown;
  bytes = 0;

  constructor(pipe: Writable) {
    this.#pipe = pipe;
  }

  acquire(): Promise<Buffer> {
    if (this.#error) return Promise.reject(this.#error);
    const free = this.#free.pop();
    if (free) return Promise.resolve(free);
    if (this.#allocated < BUFFERS) {
      this.#allocated++;
      return Promise.resolve(Buffer.allocUnsafe(PIPE_BUFFER_SIZE));
    }
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  submit(buffer: Buffer, length: number): void {
    if (length === 0 || this.#error) {
      this.#release(buffer);
      return;
    }
    this.bytes += length;
    const written = new Promise<void>((resolve) => {
      this.#pipe.write(buffer.subarray(0, length), (err) => {
        this.#inFlight.delete(written);
        if (err) this.#fail(err);
        this.#release(buffer);
        resolve();
      });
    });
    this.#inFlight.add(written);
  }

  #release(buffer: Buffer): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter.resolve(buffer);
    else this.#free.push(buffer);
  }

  #fail(err: unknown): void {
    this.#error ??= err;
    for (const w of this.#waiting.splice(0)) w.reject(this.#error);
  }

  async finish(): Promise<void> {
    await Promise.all([...this.#inFlight]);
    if (this.#error) throw this.#error;
    await new Promise<void>((resolve, reject) => {
      this.#pipe.once('error', reject);
      this.#pipe.end(() => resolve());
    });
  }

  async abort(): Promise<void> {
    this.#pipe.destroy();
    await Promise.all([...this.#inFlight]);
  }
}

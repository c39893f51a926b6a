import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackupError, type ErrorCode } from '../errors.js';
import { threadModule } from '../pipeline/threads.js';
import type { Compression } from './blob-codec.js';
import type { MasterKey } from './crypto.js';
import type { CryptoMessage, CryptoReply, OpenMessage, SealMessage } from './crypto-thread.js';

const THREAD = threadModule('crypto-thread', import.meta.url);
/** Threads for a machine's cores; the main thread chunks and hashes beside them. */
const MAX_THREADS = 4;

export interface SealResult {
  /** The staging buffer, back from the thread: the sealed blob from 0. */
  buffer: Buffer;
  sealedLength: number;
  uncompressedLength: number;
}

export interface OpenResult {
  /** The buffer, back from the thread: the plaintext from 0. */
  buffer: Buffer;
  length: number;
}

interface Thread {
  worker: Worker;
  busy: number;
  keys: Set<number>;
}

interface Job {
  resolve: (reply: CryptoReply) => void;
  reject: (err: Error) => void;
  thread: Thread;
}

let shared: CryptoPool | null | undefined;
let nextKeyId = 1;
const keyIds = new WeakMap<MasterKey, number>();

/**
 * Crypto threads shared by every repository of the process: blobs are compressed and sealed for
 * packs, and opened for restores, beside the main thread's reading, chunking and hashing. Buffers
 * travel to a thread and back without copies (each call hands over an ArrayBuffer of its own,
 * from `Buffer.allocUnsafeSlow`, and gets it back in the result); the callers bound how many are
 * in flight. A thread keeps the event loop alive only while it has work.
 */
export class CryptoPool {
  readonly #threads: Thread[];
  readonly #jobs = new Map<number, Job>();
  #nextJob = 1;
  #broken: Error | undefined;

  private constructor(module: URL, count: number) {
    this.#threads = Array.from({ length: count }, () => this.#spawn(module));
  }

  /**
   * The process's pool, started on first use; undefined where the thread's compiled module is
   * missing (tests of a tree that was not built) or the machine has one core.
   */
  static shared(): CryptoPool | undefined {
    if (shared === undefined) {
      const count = Math.min(MAX_THREADS, availableParallelism());
      shared = THREAD && count > 1 ? new CryptoPool(THREAD, count) : null;
    }
    return shared ?? undefined;
  }

  get size(): number {
    return this.#threads.length;
  }

  /** Compresses (when it helps) and seals a staged blob: IV at 0..16, plaintext at 16..16+length. */
  async seal(key: MasterKey, buffer: Buffer, length: number, compress: Compression): Promise<SealResult> {
    const reply = await this.#run(key, (job, keyId) => ({ op: 'seal', job, keyId, buffer: ownArrayBuffer(buffer), length, compress }) satisfies SealMessage);
    return { buffer: Buffer.from(reply.buffer), sealedLength: reply.length, uncompressedLength: reply.uncompressedLength };
  }

  /**
   * Opens a sealed blob held at 0..sealedLength of `buffer` (room for its plaintext), checks it
   * against `id` (32 bytes); the plaintext comes back from 0.
   */
  async open(key: MasterKey, buffer: Buffer, sealedLength: number, uncompressedLength: number, id: Uint8Array, what: string): Promise<OpenResult> {
    const reply = await this.#run(
      key,
      (job, keyId) => ({ op: 'open', job, keyId, buffer: ownArrayBuffer(buffer), sealedLength, uncompressedLength, id, what }) satisfies OpenMessage,
    );
    return { buffer: Buffer.from(reply.buffer), length: reply.length };
  }

  #run(key: MasterKey, message: (job: number, keyId: number) => SealMessage | OpenMessage): Promise<CryptoReply> {
    if (this.#broken) return Promise.reject(this.#broken);
    const thread = this.#threads.reduce((a, b) => (b.busy < a.busy ? b : a));
    const keyId = this.#keyIdOn(thread, key);
    const job = this.#nextJob++;
    const m = message(job, keyId);
    return new Promise<CryptoReply>((resolve, reject) => {
      this.#jobs.set(job, { resolve, reject, thread });
      if (thread.busy++ === 0) thread.worker.ref();
      thread.worker.postMessage(m, [m.buffer]);
    });
  }

  #keyIdOn(thread: Thread, key: MasterKey): number {
    let id = keyIds.get(key);
    if (id === undefined) keyIds.set(key, (id = nextKeyId++));
    if (!thread.keys.has(id)) {
      thread.worker.postMessage({ op: 'key', keyId: id, key: key.toJson() } satisfies CryptoMessage);
      thread.keys.add(id);
    }
    return id;
  }

  #spawn(module: URL): Thread {
    const worker = new Worker(module);
    const thread: Thread = { worker, busy: 0, keys: new Set() };
    worker.on('message', (reply: CryptoReply) => {
      const job = this.#jobs.get(reply.job);
      if (!job) return;
      this.#jobs.delete(reply.job);
      if (--thread.busy === 0) worker.unref();
      if (reply.error) {
        const code = (reply.error.code.startsWith('E_') ? reply.error.code : 'E_INTERNAL') as ErrorCode;
        const { message, object } = reply.error;
        job.reject(new BackupError(code, message, object ? { details: { object } } : {}));
      } else job.resolve(reply);
    });
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', (code) => this.#fail(new Error(`a crypto thread exited (code ${code})`)));
    // After the listeners: adding a 'message' listener refs the worker's port again, and an idle
    // pool must not keep the process alive (list and verify would never exit).
    worker.unref();
    return thread;
  }

  /** A thread died: every job in flight fails, and so does every later call (the run stops). */
  #fail(err: Error): void {
    this.#broken ??= new BackupError('E_INTERNAL', `restic crypto thread failed: ${err.message}`, { cause: err });
    for (const job of this.#jobs.values()) job.reject(this.#broken);
    this.#jobs.clear();
    for (const t of this.#threads) t.worker.unref();
  }
}

/** A buffer's ArrayBuffer, which must be the buffer's alone (allocUnsafeSlow) to be transferred. */
function ownArrayBuffer(buffer: Buffer): ArrayBuffer {
  if (buffer.byteOffset !== 0 || buffer.buffer.byteLength !== buffer.length) {
    throw new BackupError('E_INTERNAL', 'a crypto buffer must own its memory (Buffer.allocUnsafeSlow)');
  }
  return buffer.buffer as ArrayBuffer;
}

import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { HashChunkMessage } from './hash-thread.js';
import { threadModule } from './threads.js';

const THREAD = threadModule('hash-thread', import.meta.url);

const BUFFERS = 8;

/**
 * sha256 on a worker thread, so that on a machine with two cores hashing the stored bytes runs
 * beside decoding them. Chunks travel to the worker and back without copies, in buffers from a
 * small pool (`acquire`), so memory stays flat. Without the thread's compiled module it hashes on
 * the calling thread, with the same interface.
 */
export class HashWorker {
  readonly #worker: Worker | undefined;
  readonly #local: Hash | undefined;
  readonly #result: Promise<string>;
  readonly #size: number;
  readonly #free: Buffer[] = [];
  #allocated = 0;
  #waiting: ((b: Buffer) => void) | undefined;

  constructor(chunkSize: number) {
    this.#size = chunkSize;
    if (!THREAD) {
      this.#local = createHash('sha256');
      this.#result = Promise.resolve('');
      return;
    }
    const worker = new Worker(THREAD);
    this.#worker = worker;
    this.#result = new Promise((resolve, reject) => {
      worker.on('message', (m: string | ArrayBuffer) => {
        if (typeof m === 'string') {
          resolve(m);
          return;
        }
        this.#release(Buffer.from(m));
      });
      worker.once('error', reject);
    });
    this.#result.catch(() => {});
  }

  /** A buffer to read the next chunk into; waits while the worker still holds all of them. */
  acquire(): Promise<Buffer> {
    const free = this.#free.pop();
    if (free) return Promise.resolve(free);
    if (this.#allocated < BUFFERS) {
      this.#allocated++;
      return Promise.resolve(Buffer.allocUnsafeSlow(this.#size));
    }
    return Promise.race([new Promise<Buffer>((resolve) => (this.#waiting = resolve)), this.#result.then(() => Buffer.alloc(0))]);
  }

  /** Hashes `chunk`, a view into a buffer from `acquire`; the buffer must not be used afterwards. */
  update(chunk: Buffer): void {
    if (this.#local) {
      this.#local.update(chunk);
      this.#release(Buffer.from(chunk.buffer as ArrayBuffer));
      return;
    }
    const buffer = chunk.buffer as ArrayBuffer;
    const message: HashChunkMessage = { buffer, offset: chunk.byteOffset, length: chunk.length };
    this.#worker!.postMessage(message, [buffer]);
  }

  async digest(): Promise<string> {
    if (this.#local) return this.#local.digest('hex');
    this.#worker!.postMessage(null);
    return this.#result;
  }

  async dispose(): Promise<void> {
    await this.#worker?.terminate();
  }

  #release(buffer: Buffer): void {
    const waiter = this.#waiting;
    this.#waiting = undefined;
    if (waiter) waiter(buffer);
    else this.#free.push(buffer);
  }
}

import { Worker } from 'node:worker_threads';

// CommonJS source for an eval'd worker: works the same from src (tests) and from dist. Each chunk
// is hashed and its buffer sent back for reuse.
const SOURCE = `
const { parentPort } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha256');
parentPort.on('message', (m) => {
  if (m === null) return parentPort.postMessage(hash.digest('hex'));
  hash.update(new Uint8Array(m.buffer, m.offset, m.length));
  parentPort.postMessage(m.buffer, [m.buffer]);
});
`;

const BUFFERS = 8;

/**
 * sha256 on a worker thread, so that on a machine with two cores hashing the stored bytes runs
 * beside decoding them. Chunks travel to the worker and back without copies, in buffers from a
 * small pool (`acquire`), so memory stays flat.
 */
export class HashWorker {
  readonly #worker = new Worker(SOURCE, { eval: true });
  readonly #result: Promise<string>;
  readonly #size: number;
  readonly #free: Buffer[] = [];
  #allocated = 0;
  #waiting: ((b: Buffer) => void) | undefined;

  constructor(chunkSize: number) {
    this.#size = chunkSize;
    this.#result = new Promise((resolve, reject) => {
      this.#worker.on('message', (m: string | ArrayBuffer) => {
        if (typeof m === 'string') {
          resolve(m);
          return;
        }
        const buffer = Buffer.from(m);
        const waiter = this.#waiting;
        this.#waiting = undefined;
        if (waiter) waiter(buffer);
        else this.#free.push(buffer);
      });
      this.#worker.once('error', reject);
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
    const buffer = chunk.buffer as ArrayBuffer;
    this.#worker.postMessage({ buffer, offset: chunk.byteOffset, length: chunk.length }, [buffer]);
  }

  async digest(): Promise<string> {
    this.#worker.postMessage(null);
    return this.#result;
  }

  async dispose(): Promise<void> {
    await this.#worker.terminate();
  }
}

import { Duplex, type Transform } from 'node:stream';
import { createRequire } from 'node:module';
import type { NapiBinding } from './napi.js';

const STREAM_OUT_SIZE = 128 * 1024;

/**
 * zstd decompression as a stream that honours backpressure inside a chunk: it decodes one output
 * block at a time and stops while the reader is not reading. (zstd-napi's DecompressStream decodes
 * a whole input chunk at once: 1 MiB of a dump that compresses 100:1 became 100 MiB of queued
 * buffers, even when the reader stopped after a few KiB, as `pg_restore --list` does.)
 */
export class ZstdDecompressStream extends Duplex {
  readonly #dctx: InstanceType<NapiBinding['DCtx']>;
  #input: Buffer | undefined;
  #written: ((err?: Error | null) => void) | undefined;
  #inFrame = false;
  #wantsData = false;
  #pumping = false;

  constructor(binding: NapiBinding) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    this.#dctx = new binding.DCtx();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#input = chunk;
    this.#written = callback;
    this.#pump();
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.#inFrame) {
      callback(new Error('Stream ended in middle of compressed data frame'));
      return;
    }
    this.push(null);
    callback();
  }

  override _read(): void {
    this.#wantsData = true;
    this.#pump();
  }

  #pump(): void {
    // push() may call _read synchronously: the outer loop carries on.
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#input && this.#wantsData) {
        const out = Buffer.allocUnsafe(STREAM_OUT_SIZE);
        let result: [number, number, number];
        try {
          result = this.#dctx.decompressStream(out, this.#input) as [number, number, number];
        } catch (err) {
          this.#finishInput(err as Error);
          return;
        }
        const [remaining, produced, consumed] = result;
        this.#input = this.#input.subarray(consumed);
        if (produced > 0) this.#wantsData = this.push(out.subarray(0, produced));
        if (this.#input.length === 0 && (produced < out.length || remaining === 0)) {
          this.#inFrame = remaining !== 0;
          this.#finishInput();
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #finishInput(err?: Error): void {
    const callback = this.#written;
    this.#input = undefined;
    this.#written = undefined;
    callback?.(err);
  }
}

/** zstd-napi's own compression stream (multi-threaded with `threads` > 1). */
export function napiCompressStream(level: number, threads: number): Transform {
  const { CompressStream } = createRequire(import.meta.url)('zstd-napi') as typeof import('zstd-napi');
  return new CompressStream({ compressionLevel: level, ...(threads > 1 ? { nbWorkers: threads } : {}) }) as unknown as Transform;
}

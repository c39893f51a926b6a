import { Duplex } from 'node:stream';
import binding from 'zstd-napi/binding.js';
import { BackupError } from '../errors.js';
import type { Compression } from '../manifest.js';

/**
 * Decodes stored bytes synchronously, handing each decoded piece to `onData` as a view that is
 * only valid during the call (the buffer is reused): no stream, no allocation per piece.
 */
export interface ChunkDecoder {
  update(chunk: Buffer, onData: (data: Buffer) => void): void;
  /** Throws when the input stopped in the middle of a frame. */
  end(): void;
}

const OUT_SIZE = 1024 * 1024;

class ZstdChunkDecoder implements ChunkDecoder {
  readonly #dctx = new binding.DCtx();
  readonly #out = Buffer.allocUnsafe(OUT_SIZE);
  readonly #label: string;
  #inFrame = false;

  constructor(label: string) {
    this.#label = label;
  }

  update(chunk: Buffer, onData: (data: Buffer) => void): void {
    let src = chunk;
    for (;;) {
      let result: [number, number, number];
      try {
        result = this.#dctx.decompressStream(this.#out, src) as [number, number, number];
      } catch (err) {
        throw new BackupError('E_INTEGRITY', `${this.#label}: cannot be decoded: ${(err as Error).message}`, { cause: err });
      }
      const [remaining, produced, consumed] = result;
      if (produced > 0) onData(this.#out.subarray(0, produced));
      src = src.subarray(consumed);
      if (src.length === 0 && (produced < this.#out.length || remaining === 0)) {
        this.#inFrame = remaining !== 0;
        return;
      }
    }
  }

  end(): void {
    if (this.#inFrame) throw new BackupError('E_INTEGRITY', `${this.#label}: cannot be decoded: it ends in the middle of a zstd frame`);
  }
}

class PlainChunkDecoder implements ChunkDecoder {
  update(chunk: Buffer, onData: (data: Buffer) => void): void {
    onData(chunk);
  }

  end(): void {}
}

/** A synchronous decoder for `compression`, or undefined where only a stream can decode it (gzip). */
export function createChunkDecoder(compression: Compression, label: string): ChunkDecoder | undefined {
  switch (compression) {
    case 'zstd':
      return new ZstdChunkDecoder(label);
    case 'none':
      return new PlainChunkDecoder();
    case 'gzip':
      return undefined;
  }
}

const STREAM_OUT_SIZE = 128 * 1024;

/**
 * zstd decompression as a stream that honours backpressure inside a chunk: it decodes one output
 * block at a time and stops while the reader is not reading. (zstd-napi's DecompressStream decodes
 * a whole input chunk at once: 1 MiB of a dump that compresses 100:1 became 100 MiB of queued
 * buffers, even when the reader stopped after a few KiB, as `pg_restore --list` does.)
 */
export class ZstdDecompressStream extends Duplex {
  readonly #dctx = new binding.DCtx();
  #input: Buffer | undefined;
  #written: ((err?: Error | null) => void) | undefined;
  #inFrame = false;
  #wantsData = false;
  #pumping = false;

  constructor() {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
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

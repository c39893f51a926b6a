import { BackupError } from '../errors.js';
import { undecodableError } from './stored-bytes.js';
import type { Compression } from '../manifest.js';
import type { NapiBinding } from '../zstd/napi.js';
import { zstdCodec } from '../zstd/index.js';

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
  readonly #dctx: InstanceType<NapiBinding['DCtx']>;
  readonly #out = Buffer.allocUnsafe(OUT_SIZE);
  readonly #label: string;
  #inFrame = false;

  constructor(binding: NapiBinding, label: string) {
    this.#dctx = new binding.DCtx();
    this.#label = label;
  }

  update(chunk: Buffer, onData: (data: Buffer) => void): void {
    let src = chunk;
    for (;;) {
      let result: [number, number, number];
      try {
        result = this.#dctx.decompressStream(this.#out, src) as [number, number, number];
      } catch (err) {
        throw undecodableError(`${this.#label}: cannot be decoded: ${(err as Error).message}`, err);
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
    if (this.#inFrame) throw undecodableError(`${this.#label}: cannot be decoded: it ends in the middle of a zstd frame`);
  }
}

class PlainChunkDecoder implements ChunkDecoder {
  update(chunk: Buffer, onData: (data: Buffer) => void): void {
    onData(chunk);
  }

  end(): void {}
}

/**
 * A synchronous decoder for `compression`, or undefined where only a stream can decode it (gzip,
 * and zstd without zstd-napi's binding).
 */
export function createChunkDecoder(compression: Compression, label: string): ChunkDecoder | undefined {
  switch (compression) {
    case 'zstd': {
      const binding = zstdCodec().binding;
      return binding && new ZstdChunkDecoder(binding, label);
    }
    case 'none':
      return new PlainChunkDecoder();
    case 'gzip':
      return undefined;
  }
}

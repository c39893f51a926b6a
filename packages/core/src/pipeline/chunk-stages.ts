import { Transform, type TransformCallback } from 'node:stream';
import type { ChunkDecoder } from './decoder.js';

/**
 * A synchronous stage after compression (in-process encryption). The pipeline applies it to each
 * pooled buffer right before the buffer is hashed and written, so it costs no stream stage, no
 * pipe and no extra pass.
 */
export interface ChunkEncoder {
  /** The bytes to store for `data` (a view valid only during the call); may be empty. */
  update(data: Buffer): Buffer;
  /** The bytes that end the output (an integrity tag, the last packet's framing). */
  final(): Buffer;
  /** Called with each output once it is written, for the encoder to reuse its memory. */
  release?(output: Buffer): void;
}

/** A ChunkEncoder as a stream stage, for the pipelines that are streams (gzip, other repositories). */
export function chunkEncoderStream(encoder: ChunkEncoder): Transform {
  return new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      let out: Buffer;
      try {
        out = encoder.update(chunk);
      } catch (err) {
        callback(err as Error);
        return;
      }
      callback(null, out.length ? out : undefined);
    },
    flush(callback: TransformCallback) {
      let out: Buffer;
      try {
        out = encoder.final();
      } catch (err) {
        callback(err as Error);
        return;
      }
      callback(null, out.length ? out : undefined);
    },
  });
}

/**
 * A ChunkDecoder as a stream stage. `end()`'s checks (an integrity tag) decide whether the stream
 * ends or errors, so a reader must treat the data as good only once the stream has ended.
 */
export function chunkDecoderStream(decoder: ChunkDecoder): Transform {
  return new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      try {
        // The decoder's views are valid only during its call: copy what goes downstream.
        decoder.update(chunk, (data) => this.push(Buffer.from(data)));
      } catch (err) {
        callback(err as Error);
        return;
      }
      callback();
    },
    flush(callback: TransformCallback) {
      try {
        decoder.end();
      } catch (err) {
        callback(err as Error);
        return;
      }
      callback();
    },
  });
}

/** `first`'s output decoded by `second`: decryption, then decompression, in one synchronous call. */
export function chainDecoders(first: ChunkDecoder, second: ChunkDecoder): ChunkDecoder {
  return {
    update(chunk, onData) {
      first.update(chunk, (data) => second.update(data, onData));
    },
    end() {
      first.end();
      second.end();
    },
  };
}

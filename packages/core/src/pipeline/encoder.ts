import type { NapiBinding } from '../zstd/napi.js';
import { zstdCodec } from '../zstd/index.js';
import type { ArtifactOutput } from './artifact-output.js';

/**
 * Turns raw artifact bytes into stored bytes. `write` compresses; `store` keeps bytes as they are
 * (for data known not to compress); both go to the output in order.
 */
export interface ArtifactEncoder {
  write(data: Buffer): Promise<void>;
  store(data: Buffer): Promise<void>;
  /** Ends the stream; the output then holds everything. */
  end(): Promise<void>;
}

/** Room a zstd call should have in its output buffer before it is handed one. */
const MIN_ROOM = 64 * 1024;
const RAW_BLOCK = 128 * 1024;
const EMPTY = Buffer.alloc(0);
/**
 * A zstd frame header for stored blocks: magic, frame header descriptor 0 (no content size, no
 * checksum, no dictionary), window descriptor 0x38 (a 128 KiB window, the largest block), so a
 * decoder needs no more than one block of memory.
 */
const RAW_FRAME_HEADER = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]);
/** The last block of a stored frame: raw, empty, with the last-block bit (as zstd itself ends frames). */
const LAST_EMPTY_BLOCK = Buffer.from([0x01, 0x00, 0x00]);

/** Fills output buffers borrowed from an ArtifactOutput. */
class OutputCursor {
  readonly #output: ArtifactOutput;
  #buffer: Buffer | undefined;
  #pos = 0;

  constructor(output: ArtifactOutput) {
    this.#output = output;
  }

  /** The free part of the current buffer, with at least `min` bytes. */
  async room(min: number): Promise<Buffer> {
    if (!this.#buffer || this.#buffer.length - this.#pos < min) {
      if (this.#buffer) this.#output.submit(this.#buffer, this.#pos);
      this.#buffer = await this.#output.acquire();
      this.#pos = 0;
    }
    return this.#buffer.subarray(this.#pos);
  }

  advance(n: number): void {
    this.#pos += n;
  }

  async copy(data: Buffer): Promise<void> {
    while (data.length) {
      const room = await this.room(1);
      const n = Math.min(room.length, data.length);
      data.copy(room, 0, 0, n);
      this.#pos += n;
      data = data.subarray(n);
    }
  }

  flush(): void {
    if (this.#buffer) this.#output.submit(this.#buffer, this.#pos);
    this.#buffer = undefined;
    this.#pos = 0;
  }
}

/** compression: none. */
export class PlainEncoder implements ArtifactEncoder {
  readonly #out: OutputCursor;

  constructor(output: ArtifactOutput) {
    this.#out = new OutputCursor(output);
  }

  write(data: Buffer): Promise<void> {
    return this.#out.copy(data);
  }

  store(data: Buffer): Promise<void> {
    return this.#out.copy(data);
  }

  async end(): Promise<void> {
    this.#out.flush();
  }
}

export interface ZstdEncoderOptions {
  level: number;
  /** zstd worker threads (0: compress on the calling thread). */
  workers: number;
}

/**
 * zstd through the native binding, called directly (no stream wrapper, no buffer per call).
 * Compressed data goes into zstd frames; stored data into frames of raw blocks, which cost no
 * compression time and only 3 bytes per 128 KiB. Consecutive frames decode as one stream with
 * stock `zstd -d`.
 */
export class ZstdEncoder implements ArtifactEncoder {
  readonly #binding: NapiBinding;
  readonly #cctx: InstanceType<NapiBinding['CCtx']>;
  readonly #out: OutputCursor;
  /** What the current frame holds: compressed blocks, raw blocks, or no frame is open. */
  #frame: 'zstd' | 'raw' | undefined;
  #frames = 0;

  constructor(output: ArtifactOutput, options: ZstdEncoderOptions) {
    const binding = zstdCodec().binding;
    if (!binding) throw new Error('ZstdEncoder: zstd-napi is not the zstd backend (isStreamOnly says so)');
    this.#binding = binding;
    this.#cctx = new binding.CCtx();
    this.#out = new OutputCursor(output);
    this.#cctx.setParameter(binding.CParameter.compressionLevel, options.level);
    if (options.workers > 0) this.#cctx.setParameter(binding.CParameter.nbWorkers, options.workers);
  }

  async write(data: Buffer): Promise<void> {
    if (this.#frame === 'raw') await this.#endRawFrame();
    this.#frame = 'zstd';
    while (data.length) {
      const room = await this.#out.room(MIN_ROOM);
      const [, produced, consumed] = this.#cctx.compressStream2(room, data, this.#binding.EndDirective.continue);
      this.#out.advance(produced);
      data = data.subarray(consumed);
    }
  }

  async store(data: Buffer): Promise<void> {
    if (this.#frame === 'zstd') await this.#endZstdFrame();
    if (this.#frame !== 'raw') {
      await this.#out.copy(RAW_FRAME_HEADER);
      this.#frame = 'raw';
      this.#frames++;
    }
    while (data.length) {
      const n = Math.min(RAW_BLOCK, data.length);
      const room = await this.#out.room(3 + n);
      // Block header: not last, type raw (0), size n.
      room.writeUIntLE(n << 3, 0, 3);
      data.copy(room, 3, 0, n);
      this.#out.advance(3 + n);
      data = data.subarray(n);
    }
  }

  async end(): Promise<void> {
    if (this.#frame === 'raw') await this.#endRawFrame();
    // A zstd frame even for an empty artifact: zero bytes would not decode as zstd.
    else if (this.#frame === 'zstd' || this.#frames === 0) await this.#endZstdFrame();
    this.#out.flush();
  }

  async #endZstdFrame(): Promise<void> {
    for (;;) {
      const room = await this.#out.room(MIN_ROOM);
      const [remaining, produced] = this.#cctx.compressStream2(room, EMPTY, this.#binding.EndDirective.end);
      this.#out.advance(produced);
      if (remaining === 0) break;
    }
    this.#frame = undefined;
    this.#frames++;
  }

  async #endRawFrame(): Promise<void> {
    await this.#out.copy(LAST_EMPTY_BLOCK);
    this.#frame = undefined;
  }
}

const SAMPLE_MIN_SAVING = 0.03;

/**
 * Whether data like `samples` is worth compressing: a quick zstd pass (level 1) over samples
 * of it saves less than 3%. Random-looking data (model weights, media, encrypted or already
 * compressed files) is then stored, which keeps zstd from spending its time on it.
 * Needs zstd-napi's synchronous contexts (the pooled writes are the only ones that store).
 */
export function looksIncompressible(samples: Buffer[]): boolean {
  let input = 0;
  let output = 0;
  const binding = zstdCodec().binding;
  if (!binding) return false;
  const cctx = sampler(binding);
  for (const sample of samples) {
    if (!sample.length) continue;
    input += sample.length;
    output += cctx.compress2(scratch(binding.compressBound(sample.length)), sample);
  }
  return input > 0 && output > input * (1 - SAMPLE_MIN_SAVING);
}

let samplerCctx: InstanceType<NapiBinding['CCtx']> | undefined;
let scratchBuffer: Buffer | undefined;

function sampler(binding: NapiBinding): InstanceType<NapiBinding['CCtx']> {
  if (!samplerCctx) {
    samplerCctx = new binding.CCtx();
    samplerCctx.setParameter(binding.CParameter.compressionLevel, 1);
  }
  return samplerCctx;
}

function scratch(size: number): Buffer {
  if (!scratchBuffer || scratchBuffer.length < size) scratchBuffer = Buffer.allocUnsafe(size);
  return scratchBuffer;
}

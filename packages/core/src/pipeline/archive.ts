import { availableParallelism } from 'node:os';
import { PassThrough, Readable, type Duplex, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openPrivate } from '../fs.js';
import type { Compression } from '../manifest.js';
import { ArtifactFile, StreamOutput, type ArtifactOutput } from './artifact-output.js';
import { createCompressor, DEFAULT_ZSTD_LEVEL } from './compression.js';
import { PlainEncoder, ZstdEncoder, type ArtifactEncoder } from './encoder.js';
import { FileSink } from './file-sink.js';
import { ByteCounter } from './hash.js';
import { IncompressibleBytes, type TarPiece } from './tar-pack.js';

export interface WrittenArtifact {
  /** Stored size and sha256 (after compression and encryption). */
  bytes: number;
  sha256: string;
  /** Size before compression. */
  rawBytes: number;
}

export interface WriteArtifactOptions {
  compression: Compression;
  compressionLevel?: number | undefined;
  /** zstd worker threads; default: one per core. */
  threads?: number | undefined;
  /** Stages after compression (encryption). */
  transforms?: Duplex[];
  onProgress?: (rawBytes: number) => void;
  signal?: AbortSignal;
}

/**
 * Streams `input` (a stream, or the pieces of `tarPieces`) through compression and any further
 * stages into a new private file, counting and hashing the stored bytes in the same pass.
 */
export async function writeArtifact(input: Readable | AsyncIterable<TarPiece>, file: string, options: WriteArtifactOptions): Promise<WrittenArtifact> {
  if (options.compression === 'gzip') return writeThroughStreams(input, file, options);
  const handle = await openPrivate(file, 'wx');
  let output: ArtifactOutput;
  let stored: () => { bytes: number; sha256: string };
  if (options.transforms?.length) {
    // Encryption and the like are streams: compressed bytes go through them into a FileSink.
    const head = new PassThrough({ highWaterMark: 1024 * 1024 });
    const sink = new FileSink(handle, { hash: true });
    output = new StreamOutput(head, pipeline([head, ...options.transforms, sink] as unknown as [Readable, Writable]));
    stored = () => ({ bytes: sink.bytes, sha256: sink.sha256 });
  } else {
    const sink = new ArtifactFile(handle);
    output = sink;
    stored = () => ({ bytes: sink.bytes, sha256: sink.sha256 });
  }
  const encoder: ArtifactEncoder =
    options.compression === 'zstd'
      ? new ZstdEncoder(output, { level: options.compressionLevel ?? DEFAULT_ZSTD_LEVEL, workers: zstdWorkers(options.threads) })
      : new PlainEncoder(output);
  let rawBytes = 0;
  try {
    for await (const piece of input) {
      options.signal?.throwIfAborted();
      if (piece instanceof IncompressibleBytes) {
        rawBytes += piece.data.length;
        await encoder.store(piece.data);
      } else {
        rawBytes += (piece as Buffer).length;
        await encoder.write(piece as Buffer);
      }
      options.onProgress?.(rawBytes);
    }
    options.signal?.throwIfAborted();
    await encoder.end();
    await output.finish();
  } catch (err) {
    await output.abort();
    if (input instanceof Readable) input.destroy();
    throw err;
  } finally {
    await handle.close();
  }
  return { ...stored(), rawBytes };
}

function zstdWorkers(threads: number | undefined): number {
  const n = threads ?? availableParallelism();
  return n > 1 ? n : 0;
}

async function writeThroughStreams(input: Readable | AsyncIterable<TarPiece>, file: string, options: WriteArtifactOptions): Promise<WrittenArtifact> {
  const source = input instanceof Readable ? input : Readable.from(ownedBuffers(input));
  const raw = new ByteCounter(options.onProgress);
  const compressor = createCompressor(options.compression, { ...(options.compressionLevel !== undefined ? { level: options.compressionLevel } : {}) });
  const handle = await openPrivate(file, 'wx');
  const out = new FileSink(handle, { hash: true });
  const stages: (Readable | Duplex | Writable)[] = [source, raw, ...(compressor ? [compressor] : []), ...(options.transforms ?? []), out];
  try {
    await pipeline(stages as unknown as [Readable, Writable], options.signal ? { signal: options.signal } : {});
  } finally {
    await handle.close();
  }
  return { bytes: out.bytes, sha256: out.sha256, rawBytes: raw.bytes };
}

async function* ownedBuffers(pieces: AsyncIterable<TarPiece>): AsyncGenerator<Buffer> {
  for await (const piece of pieces) yield Buffer.from(piece instanceof IncompressibleBytes ? piece.data : piece);
}

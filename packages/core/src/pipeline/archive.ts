import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openPrivate } from '../fs.js';
import type { Compression } from '../manifest.js';
import { createCompressor } from './compression.js';
import { FileSink } from './file-sink.js';
import { ByteCounter } from './hash.js';

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
  /** Stages after compression (encryption). */
  transforms?: Duplex[];
  onProgress?: (rawBytes: number) => void;
  signal?: AbortSignal;
}

/**
 * Streams `input` through compression and any further stages into a new private file, counting
 * and hashing the stored bytes in the same pass.
 */
export async function writeArtifact(input: Readable, file: string, options: WriteArtifactOptions): Promise<WrittenArtifact> {
  const raw = new ByteCounter(options.onProgress);
  const compressor = createCompressor(options.compression, { ...(options.compressionLevel !== undefined ? { level: options.compressionLevel } : {}) });
  const handle = await openPrivate(file, 'wx');
  const out = new FileSink(handle, { hash: true });
  const stages: (Readable | Duplex | Writable)[] = [input, raw, ...(compressor ? [compressor] : []), ...(options.transforms ?? []), out];
  try {
    await pipeline(stages as unknown as [Readable, Writable], options.signal ? { signal: options.signal } : {});
  } finally {
    await handle.close();
  }
  return { bytes: out.bytes, sha256: out.sha256, rawBytes: raw.bytes };
}

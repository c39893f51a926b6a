import { availableParallelism } from 'node:os';
import type { Duplex, Transform } from 'node:stream';
import zlib from 'node:zlib';
import zstd from 'zstd-napi';
import type { Compression } from '../manifest.js';
import { ZstdDecompressStream } from './decoder.js';

/** The extension a compression adds to an artifact's file name. */
export const compressionExtension: Record<Compression, string> = { zstd: '.zst', gzip: '.gz', none: '' };

export const DEFAULT_ZSTD_LEVEL = 3;

export interface CompressionOptions {
  level?: number;
  /** zstd worker threads; default: one per core. */
  threads?: number;
}

/** A transform that compresses, or undefined for `none`. Output decodes with stock `zstd -d` / `gzip -d`. */
export function createCompressor(compression: Compression, options: CompressionOptions = {}): Transform | undefined {
  switch (compression) {
    case 'zstd': {
      const threads = options.threads ?? availableParallelism();
      return new zstd.CompressStream({
        compressionLevel: options.level ?? DEFAULT_ZSTD_LEVEL,
        ...(threads > 1 ? { nbWorkers: threads } : {}),
      }) as unknown as Transform;
    }
    case 'gzip':
      return zlib.createGzip({ level: options.level ?? 6 });
    case 'none':
      return undefined;
  }
}

export function createDecompressor(compression: Compression): Duplex | undefined {
  switch (compression) {
    case 'zstd':
      return new ZstdDecompressStream();
    case 'gzip':
      return zlib.createGunzip();
    case 'none':
      return undefined;
  }
}

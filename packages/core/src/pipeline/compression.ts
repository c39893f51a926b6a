import type { Duplex, Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { Compression } from '../manifest.js';
import { zstdCodec, zstdHasSyncContexts } from '../zstd/index.js';

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
    case 'zstd':
      return zstdCodec().createCompressStream({ level: options.level ?? DEFAULT_ZSTD_LEVEL, threads: options.threads }) as Transform;
    case 'gzip':
      return zlib.createGzip({ level: options.level ?? 6 });
    case 'none':
      return undefined;
  }
}

export function createDecompressor(compression: Compression): Duplex | undefined {
  switch (compression) {
    case 'zstd':
      return zstdCodec().createDecompressStream();
    case 'gzip':
      return zlib.createGunzip();
    case 'none':
      return undefined;
  }
}

/**
 * Whether `compression` is a stream stage only, so every stage after it must be one too and an
 * artifact is verified after it is written: gzip, and zstd without zstd-napi's synchronous contexts.
 */
export function isStreamOnly(compression: Compression): boolean {
  return compression === 'gzip' || (compression === 'zstd' && !zstdHasSyncContexts());
}

import { availableParallelism } from 'node:os';
import type { Duplex } from 'node:stream';
import { BackupError } from '../errors.js';
import { builtinParams, builtinZstd } from './zlib.js';
import { zstdNapi, zstdNapiFailure, type NapiBinding } from './napi.js';
import { napiCompressStream, ZstdDecompressStream } from './napi-stream.js';
import { zstdProgramBuffer, zstdProgramFound, zstdProgramStream } from './program.js';

export type ZstdBackend = 'zstd-napi' | 'node:zlib' | 'zstd program';

export interface ZstdStreamOptions {
  level: number;
  /** Compression threads; default: one per core (zstd-napi and the program; node:zlib uses one). */
  threads?: number | undefined;
}

/**
 * zstd as core uses it, whichever way the running Node can do it. Every frame any backend writes
 * decodes with every other and with stock `zstd -d`.
 */
export interface ZstdCodec {
  readonly backend: ZstdBackend;
  /**
   * zstd-napi's binding when that is the backend: synchronous contexts, which the pooled writes,
   * verification while writing and the incompressibility sampler need. The other backends are
   * stream stages only (as gzip is).
   */
  readonly binding: NapiBinding | undefined;
  createCompressStream(options: ZstdStreamOptions): Duplex;
  createDecompressStream(): Duplex;
  /** One buffer (a restic blob, a small file) as one frame. */
  compress(data: Uint8Array, level: number): Promise<Buffer>;
  decompress(data: Uint8Array): Promise<Buffer>;
}

const BACKENDS = ['napi', 'zlib', 'program'] as const;
type BackendKey = (typeof BACKENDS)[number];

let chosen: ZstdCodec | null | undefined;

/**
 * The zstd backend, chosen on first use (never at start-up) in this order: zstd-napi when its
 * binding was built (multi-threaded, synchronous: the fastest here, see docs/performance.md),
 * node:zlib's zstd (Node 22.15+ and 24: no native build), the `zstd` program (Node 20 without a
 * native build). `SUTAZAI_BACKUP_ZSTD=napi|zlib|program` picks one (tests, benchmarks).
 * Throws a BackupError naming the ways to get one when none is there.
 */
export function zstdCodec(): ZstdCodec {
  if (chosen === undefined) chosen = choose();
  if (!chosen) throw unavailable();
  return chosen;
}

/** The backend zstd would use, or undefined when there is none; loads it (for `--version`-like reports). */
export function zstdBackend(): ZstdBackend | undefined {
  if (chosen === undefined) chosen = choose();
  return chosen?.backend;
}

/** Whether zstd runs through synchronous contexts here (the pooled writes and verification while writing). */
export function zstdHasSyncContexts(): boolean {
  if (chosen === undefined) chosen = choose();
  return chosen?.binding !== undefined;
}

function choose(): ZstdCodec | null {
  const forced = process.env.SUTAZAI_BACKUP_ZSTD as BackendKey | undefined;
  const order: readonly BackendKey[] = forced && BACKENDS.includes(forced) ? [forced] : BACKENDS;
  for (const key of order) {
    const codec = make(key);
    if (codec) return codec;
  }
  return null;
}

function make(key: BackendKey): ZstdCodec | undefined {
  switch (key) {
    case 'napi': {
      const binding = zstdNapi();
      return binding && napiCodec(binding);
    }
    case 'zlib':
      return builtinZstd() && zlibCodec();
    case 'program':
      return zstdProgramFound() ? programCodec() : undefined;
  }
}

function threadsOf(options: ZstdStreamOptions): number {
  return options.threads ?? availableParallelism();
}

function napiCodec(binding: NapiBinding): ZstdCodec {
  return {
    backend: 'zstd-napi',
    binding,
    createCompressStream: (options) => napiCompressStream(options.level, threadsOf(options)),
    createDecompressStream: () => new ZstdDecompressStream(binding),
    compress: async (data, level) => {
      const cctx = new binding.CCtx();
      cctx.setParameter(binding.CParameter.compressionLevel, level);
      const out = Buffer.allocUnsafe(binding.compressBound(data.length));
      return out.subarray(0, cctx.compress2(out, data));
    },
    decompress: (data) => collect(new ZstdDecompressStream(binding), data),
  };
}

function zlibCodec(): ZstdCodec {
  const z = builtinZstd()!;
  return {
    backend: 'node:zlib',
    binding: undefined,
    createCompressStream: (options) => z.createZstdCompress({ params: builtinParams(options.level) }),
    createDecompressStream: () => z.createZstdDecompress(),
    compress: (data, level) => new Promise((resolve, reject) => z.zstdCompress(data, { params: builtinParams(level) }, (err, out) => (err ? reject(err) : resolve(out)))),
    decompress: (data) => new Promise((resolve, reject) => z.zstdDecompress(data, (err, out) => (err ? reject(err) : resolve(out)))),
  };
}

function programCodec(): ZstdCodec {
  return {
    backend: 'zstd program',
    binding: undefined,
    createCompressStream: (options) => zstdProgramStream([`-${options.level}`, `-T${threadsOf(options)}`, '-c']),
    createDecompressStream: () => zstdProgramStream(['-d', '-c']),
    compress: (data, level) => zstdProgramBuffer([`-${level}`, '-c'], data),
    decompress: (data) => zstdProgramBuffer(['-d', '-c'], data),
  };
}

function unavailable(): BackupError {
  const napi = zstdNapiFailure();
  return new BackupError(
    'E_CONFIG',
    'zstd is not available here: it needs Node.js 22.15 or newer (node:zlib has zstd), zstd-napi built for this install ' +
      '(`npm rebuild zstd-napi`, which needs a C++ compiler), or the zstd program on PATH (Debian: `apt-get install zstd`); ' +
      'or set `compression: gzip` in the rc file',
    { details: { node: process.version, ...(napi ? { zstdNapi: napi } : {}) } },
  );
}

async function collect(stream: Duplex, data: Uint8Array): Promise<Buffer> {
  const parts: Buffer[] = [];
  stream.on('data', (d: Buffer) => parts.push(d));
  await new Promise<void>((resolve, reject) => {
    stream.once('error', reject);
    stream.once('end', resolve);
    stream.end(data);
  });
  return Buffer.concat(parts);
}

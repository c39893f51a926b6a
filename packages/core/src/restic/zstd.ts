import { createRequire } from 'node:module';
import type * as Binding from 'zstd-napi/binding.js';
import { BackupError } from '../errors.js';

/**
 * zstd for the restic format, through one accessor: the native binding is loaded on first use,
 * so a tool that never touches a restic repository never loads it. Contexts and the output
 * buffer are reused across calls (no allocation per blob beyond what the caller keeps).
 */

/** restic's default ("auto") compression is zstd's default level. */
export const ZSTD_LEVEL = 3;

let binding: typeof Binding | undefined;
let cctx: Binding.CCtx | undefined;
let dctx: Binding.DCtx | undefined;
let scratch = Buffer.alloc(0);

function zstd(): typeof Binding {
  binding ??= createRequire(import.meta.url)('zstd-napi/binding.js') as typeof Binding;
  return binding;
}

/**
 * Compresses `data` into one zstd frame. The result is a view of a buffer the next call reuses:
 * copy it (or finish with it) before compressing again.
 */
export function compressTransient(data: Uint8Array, level = ZSTD_LEVEL): Buffer {
  const z = zstd();
  cctx ??= new z.CCtx();
  const bound = z.compressBound(data.length);
  if (scratch.length < bound) scratch = Buffer.allocUnsafe(Math.max(bound, 1024 * 1024));
  const n = cctx.compress(scratch, data, level);
  return scratch.subarray(0, n);
}

/** Compresses into a new buffer the caller keeps. */
export function compress(data: Uint8Array, level = ZSTD_LEVEL): Buffer {
  return Buffer.from(compressTransient(data, level));
}

/**
 * Decompresses one or more zstd frames that hold exactly `size` bytes; `what` names the object in
 * errors.
 */
export function decompressExact(data: Uint8Array, size: number, what: string): Buffer {
  const out = Buffer.allocUnsafe(size);
  decompressInto(data, out, size, what);
  return out;
}

/** As decompressExact, into `out` (at least `size` bytes), which the caller reuses. */
export function decompressInto(data: Uint8Array, out: Uint8Array, size: number, what: string): void {
  const z = zstd();
  dctx ??= new z.DCtx();
  let n: number;
  try {
    n = size === 0 ? 0 : dctx.decompress(out.subarray(0, size), data);
  } catch (err) {
    throw new BackupError('E_INTEGRITY', `${what}: zstd cannot decode it: ${(err as Error).message}`, { cause: err });
  }
  if (n !== size) throw new BackupError('E_INTEGRITY', `${what}: decompresses to ${n} bytes, the index says ${size}`);
}

/** Decompresses frames of unknown total size (restic's unpacked files), up to `limit` bytes. */
export function decompress(data: Uint8Array, what: string, limit = 1024 * 1024 * 1024): Buffer {
  const z = zstd();
  const size = safe(() => z.getFrameContentSize(data), what);
  if (size !== null && size <= limit && z.findFrameCompressedSize(data) === data.length) {
    return decompressExact(data, size, what);
  }
  return streamDecompress(data, what, limit);
}

function streamDecompress(data: Uint8Array, what: string, limit: number): Buffer {
  const z = zstd();
  const d = new z.DCtx();
  const parts: Buffer[] = [];
  let total = 0;
  let input = data;
  const out = Buffer.allocUnsafe(z.dStreamOutSize());
  for (;;) {
    const [left, produced, consumed] = safe(() => d.decompressStream(out, input), what);
    input = input.subarray(consumed);
    if (produced > 0) {
      total += produced;
      if (total > limit) throw new BackupError('E_INTEGRITY', `${what}: decompresses to more than ${limit} bytes`);
      parts.push(Buffer.from(out.subarray(0, produced)));
    }
    if (input.length === 0 && produced < out.length) {
      if (left !== 0) throw new BackupError('E_INTEGRITY', `${what}: it ends in the middle of a zstd frame`);
      break;
    }
    if (produced === 0 && consumed === 0) throw new BackupError('E_INTEGRITY', `${what}: zstd cannot decode it`);
  }
  return Buffer.concat(parts, total);
}

function safe<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch (err) {
    throw new BackupError('E_INTEGRITY', `${what}: zstd cannot decode it: ${(err as Error).message}`, { cause: err });
  }
}

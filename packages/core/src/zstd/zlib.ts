import type { Transform } from 'node:stream';
import zlib from 'node:zlib';

type Params = Record<number, number>;
/** The zstd part of node:zlib (Node 22.15+ and 24), which @types/node 20 does not declare. */
interface NodeZstd {
  createZstdCompress(options: { params: Params }): Transform;
  createZstdDecompress(): Transform;
  zstdCompress(data: Uint8Array, options: { params: Params }, callback: (err: Error | null, out: Buffer) => void): void;
  zstdDecompress(data: Uint8Array, callback: (err: Error | null, out: Buffer) => void): void;
}

const nodeZstd = zlib as unknown as Partial<NodeZstd>;
const constants = zlib.constants as unknown as Record<string, number>;

let usable: boolean | undefined;

/**
 * node:zlib's zstd when the running Node has it and its decoder reads what artifacts hold: several
 * frames one after the other (the pooled writes store data that does not compress in frames of
 * its own), and a cut frame as an error. Node 22.23 fails both, silently (it stops after the first
 * frame of a chunk), so there this is undefined.
 */
export function builtinZstd(): NodeZstd | undefined {
  if (usable === undefined) usable = typeof nodeZstd.createZstdCompress === 'function' && decodesLikeZstd();
  return usable ? (nodeZstd as NodeZstd) : undefined;
}

function decodesLikeZstd(): boolean {
  const sync = zlib as unknown as { zstdCompressSync(data: Buffer): Buffer; zstdDecompressSync(data: Buffer): Buffer };
  try {
    const frames = Buffer.concat([sync.zstdCompressSync(Buffer.from('first frame ')), sync.zstdCompressSync(Buffer.from('second frame'))]);
    if (sync.zstdDecompressSync(frames).toString() !== 'first frame second frame') return false;
  } catch {
    return false;
  }
  try {
    sync.zstdDecompressSync(sync.zstdCompressSync(Buffer.alloc(4096, 'a')).subarray(0, 8));
    return false;
  } catch {
    return true;
  }
}

/**
 * Compression level only: ZSTD_c_nbWorkers makes Node's stream push output after its end
 * (ERR_STREAM_PUSH_AFTER_EOF on 22.23 and 24.22), so node:zlib compresses on one thread of libuv's pool.
 */
export function builtinParams(level: number): Params {
  return { [constants.ZSTD_c_compressionLevel!]: level };
}

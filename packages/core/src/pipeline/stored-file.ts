import type { promises as fsp } from 'node:fs';
import { HashWorker } from './hash-worker.js';
import type { StoredBytesCheck } from './stored-bytes.js';

const READ_CHUNK = 1024 * 1024;
/** From this size the sha256 runs on a worker thread, beside whatever consumes the chunks. */
const HASH_OFFLOAD_FROM = 64 * 1024 * 1024;

/** Reads kept in flight: one at a time leaves a cold disk idle between requests. */
const READS_AHEAD = 4;

/**
 * A file's content in chunks, the next reads running while a chunk is used. From reused buffers,
 * or from `acquire` when chunks are handed on to another thread.
 */
async function* readChunks(file: fsp.FileHandle, acquire?: () => Promise<Buffer>): AsyncGenerator<Buffer> {
  const spare: Buffer[] = acquire ? [] : Array.from({ length: READS_AHEAD }, () => Buffer.allocUnsafe(READ_CHUNK));
  const reads: { buffer: Buffer; offset: number; read: Promise<{ bytesRead: number }> }[] = [];
  let asked = 0;
  const ask = async () => {
    while (reads.length < READS_AHEAD && (acquire || spare.length)) {
      const buffer = spare.pop() ?? (await acquire!());
      reads.push({ buffer, offset: asked, read: file.read(buffer, 0, READ_CHUNK, asked) });
      asked += READ_CHUNK;
    }
  };
  try {
    await ask();
    for (;;) {
      const next = reads.shift()!;
      const { bytesRead } = await next.read;
      if (bytesRead === 0) return;
      if (bytesRead < READ_CHUNK) {
        // Short (the end, or a file still growing): what was asked beyond is asked again.
        for (const r of reads.splice(0)) {
          await r.read.catch(() => {});
          spare.push(r.buffer);
        }
        asked = next.offset + bytesRead;
      }
      yield next.buffer.subarray(0, bytesRead);
      if (!acquire) spare.push(next.buffer);
      await ask();
    }
  } finally {
    await Promise.allSettled(reads.map((r) => r.read));
  }
}

/**
 * Reads an artifact's local file to the end, checking its size and sha256 as it goes (`check`;
 * the caller calls its `end`), and hands each chunk to `onChunk`, a view valid only during the
 * call. Closes the file.
 */
export async function readStoredFile(file: fsp.FileHandle, bytes: number, check: StoredBytesCheck, onChunk?: (chunk: Buffer) => void): Promise<void> {
  const hasher = bytes >= HASH_OFFLOAD_FROM ? new HashWorker(READ_CHUNK) : undefined;
  try {
    for await (const chunk of readChunks(file, hasher ? () => hasher.acquire() : undefined)) {
      if (hasher) {
        check.count(chunk);
        onChunk?.(chunk);
        // Last: the chunk moves to the hashing thread.
        hasher.update(chunk);
      } else {
        check.update(chunk);
        onChunk?.(chunk);
      }
    }
    if (hasher) check.expectSha256(await hasher.digest());
  } finally {
    await hasher?.dispose();
    await file.close();
  }
}

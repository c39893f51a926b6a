import { createHash, type Hash } from 'node:crypto';
import type { promises as fsp } from 'node:fs';
import { Writable } from 'node:stream';

/**
 * Writes a stream into an open file, optionally hashing it in the same pass, and fsyncs it
 * before finishing. (A WriteStream made from a FileHandle keeps the handle referenced, so the
 * handle could not be synced and closed afterwards.) The caller closes the handle.
 */
export class FileSink extends Writable {
  readonly #handle: fsp.FileHandle;
  readonly #hash: Hash | undefined;
  bytes = 0;
  #digest: string | undefined;

  constructor(handle: fsp.FileHandle, options: { hash?: boolean } = {}) {
    super({ highWaterMark: 1024 * 1024 });
    this.#handle = handle;
    this.#hash = options.hash ? createHash('sha256') : undefined;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#hash?.update(chunk);
    this.bytes += chunk.length;
    writeFully(this.#handle, [chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    for (const b of buffers) {
      this.#hash?.update(b);
      this.bytes += b.length;
    }
    writeFully(this.#handle, buffers).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#handle.sync().then(() => callback(), callback);
  }

  /** The hex sha256 of what was written; valid once the stream has finished. */
  get sha256(): string {
    if (!this.#hash) throw new Error('FileSink was created without hashing');
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }
}

async function writeFully(handle: fsp.FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers.filter((b) => b.length > 0);
  while (pending.length) {
    const { bytesWritten } = pending.length === 1 ? await handle.write(pending[0]!) : await handle.writev(pending);
    let written = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of pending) {
      if (written >= b.length) written -= b.length;
      else {
        rest.push(b.subarray(written));
        written = 0;
      }
    }
    pending = rest;
  }
}

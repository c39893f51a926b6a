import { closeSync, openSync, readSync } from 'node:fs';

export interface ReadAheadBatch {
  /** The number (in walk order, from 0) of the first file of `paths`. */
  first: number;
  paths: string[];
}

/**
 * Reads each file of a batch into `buffer` (only its first `buffer.length` bytes), skipping those
 * whose number the packing has reached (`reached[0]`): what is left behind is the files in the page
 * cache. Unreadable files are skipped; the packing reads every file itself and reports errors.
 * Returns how many files were read.
 */
export function readAhead(batch: ReadAheadBatch, reached: Int32Array, buffer: Buffer): number {
  let read = 0;
  for (let i = 0; i < batch.paths.length; i++) {
    if (batch.first + i <= Atomics.load(reached, 0)) continue;
    try {
      const fd = openSync(batch.paths[i]!, 'r');
      try {
        readSync(fd, buffer, 0, buffer.length, 0);
        read++;
      } finally {
        closeSync(fd);
      }
    } catch {
      // Gone or unreadable: the packing will say so.
    }
  }
  return read;
}

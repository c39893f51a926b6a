/**
 * Content-defined chunking: a file is cut where a rolling hash of the last bytes hits a pattern,
 * so an insertion moves the cuts near it only and the other chunks keep their ids. restic reads
 * any cut points; the sizes follow restic's (no cut before 512 KiB, a forced one at 8 MiB).
 */

export const MIN_CHUNK = 512 * 1024;
export const MAX_CHUNK = 8 * 1024 * 1024;

export interface ContentChunker {
  readonly minSize: number;
  readonly maxSize: number;
  /** Starts a new chunk (after a cut, or for a new file). */
  reset(): void;
  /**
   * Feeds `buf[start, end)`, the next bytes of the current chunk, and returns the index just past
   * the cut when one falls inside (the chunker is then reset), or -1 when the chunk goes on.
   */
  findCut(buf: Uint8Array, start: number, end: number): number;
}

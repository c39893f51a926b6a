import type { Readable } from 'node:stream';

/**
 * Streams core reads from their first byte as they are made (a child's stdout through startChild):
 * a late reader cannot lose what they carry, so the engine adopts them without another buffer.
 */
const readFromStart = new WeakSet<Readable>();

export function markReadFromStart(stream: Readable): void {
  readFromStart.add(stream);
}

export function isReadFromStart(stream: Readable): boolean {
  return readFromStart.has(stream);
}

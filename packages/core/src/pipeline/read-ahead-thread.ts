// The thread of tar-pack's SmallFilePrefetch: reads small files ahead of the packing.
import { parentPort, workerData } from 'node:worker_threads';
import { readAhead, type ReadAheadBatch } from './read-ahead.js';
import { lowerThreadPriority } from './threads.js';

const { reached, bufferSize } = workerData as { reached: Int32Array; bufferSize: number };
lowerThreadPriority(10);
const buffer = Buffer.allocUnsafe(bufferSize);
parentPort!.on('message', (batch: ReadAheadBatch) => readAhead(batch, reached, buffer));

// The worker thread of FollowingVerifier: reads an artifact file behind its writer and posts
// what it found (StoredScanOutcome).
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { FollowState, loadThreadDecoder, StoredArtifactScan, type StoredScanOptions } from './follow-verify.js';
import { lowerThreadPriority } from './threads.js';

const READ_CHUNK = 1024 * 1024;
/** A wait is woken by every change; the timeout only guards against a lost wake-up. */
const WAIT_MS = 1000;

const { file, options, state } = workerData as { file: string; options: StoredScanOptions; state: BigInt64Array };
lowerThreadPriority(19);
const scan = new StoredArtifactScan(options, options.decoder ? await loadThreadDecoder(options.decoder) : undefined);
const buffer = Buffer.allocUnsafe(READ_CHUNK);
const fd = openSync(file, 'r');
try {
  let position = 0;
  for (;;) {
    const generation = Atomics.load(state, FollowState.generation);
    const phase = Atomics.load(state, FollowState.phase);
    if (phase === 2n) break;
    const available = Number(Atomics.load(state, FollowState.stored)) - position;
    // Whole chunks while the writer is still going: fewer, larger reads.
    if (available >= READ_CHUNK || (phase === 1n && available > 0)) {
      const n = readSync(fd, buffer, 0, Math.min(READ_CHUNK, available), position);
      if (n === 0) throw new Error(`${options.label}: the file ends at ${position} bytes, before what was written`);
      position += n;
      scan.update(buffer.subarray(0, n));
      continue;
    }
    if (phase === 1n) {
      // Whatever the file holds beyond what was written counts too: it must not be there.
      const extra = readSync(fd, buffer, 0, READ_CHUNK, position);
      if (extra > 0) scan.update(buffer.subarray(0, extra));
      parentPort!.postMessage(scan.end());
      break;
    }
    Atomics.wait(state, FollowState.generation, generation, WAIT_MS);
  }
} finally {
  closeSync(fd);
}

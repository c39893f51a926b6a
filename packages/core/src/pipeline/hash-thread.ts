// The thread of HashWorker: hashes each chunk it is sent and sends the buffer back for reuse; a
// null message asks for the digest.
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export interface HashChunkMessage {
  buffer: ArrayBuffer;
  offset: number;
  length: number;
}

const hash = createHash('sha256');
parentPort!.on('message', (m: HashChunkMessage | null) => {
  if (m === null) {
    parentPort!.postMessage(hash.digest('hex'));
    return;
  }
  hash.update(new Uint8Array(m.buffer, m.offset, m.length));
  parentPort!.postMessage(m.buffer, [m.buffer]);
});

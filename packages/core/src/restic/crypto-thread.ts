// A crypto thread of CryptoPool: seals blobs for packs (zstd, AES-256-CTR, Poly1305-AES) and
// opens them for restores, in buffers the main thread transfers here and gets back, so the bytes
// are never copied between threads. Each reply carries the buffer back, error or not.
import { parentPort } from 'node:worker_threads';
import { openSealed, Scratch, sealStaged, type Compression } from './blob-codec.js';
import { MasterKey, type MasterKeyJson } from './crypto.js';

export interface KeyMessage {
  op: 'key';
  keyId: number;
  key: MasterKeyJson;
}

export interface SealMessage {
  op: 'seal';
  job: number;
  keyId: number;
  /** IV at 0..16, plaintext at 16..16+length; gets the sealed blob from 0. */
  buffer: ArrayBuffer;
  length: number;
  compress: Compression;
}

export interface OpenMessage {
  op: 'open';
  job: number;
  keyId: number;
  /** The sealed blob at 0..sealedLength; gets the plaintext from 0. */
  buffer: ArrayBuffer;
  sealedLength: number;
  uncompressedLength: number;
  id: Uint8Array;
  what: string;
}

export type CryptoMessage = KeyMessage | SealMessage | OpenMessage;

export interface CryptoReply {
  job: number;
  buffer: ArrayBuffer;
  /** Sealed length (seal) or plaintext length (open). */
  length: number;
  uncompressedLength: number;
  error?: { code: string; message: string; object?: string };
}

const keys = new Map<number, MasterKey>();
const scratch = new Scratch();

function run(m: SealMessage | OpenMessage): Omit<CryptoReply, 'job' | 'buffer'> {
  const key = keys.get(m.keyId);
  if (!key) throw new Error(`crypto thread: no key ${m.keyId}`);
  const buf = Buffer.from(m.buffer);
  if (m.op === 'seal') {
    const sealed = sealStaged(key, buf, m.length, m.compress);
    return { length: sealed.sealedLength, uncompressedLength: sealed.uncompressedLength };
  }
  const sealed = buf.subarray(0, m.sealedLength);
  // Compressed blobs decrypt into the scratch first; stored ones in place (the output trails the input).
  const length = openSealed(key, sealed, m.uncompressedLength, m.id, m.what, buf, scratch);
  return { length, uncompressedLength: m.uncompressedLength };
}

parentPort!.on('message', (m: CryptoMessage) => {
  if (m.op === 'key') {
    keys.set(m.keyId, MasterKey.fromJson(m.key));
    return;
  }
  let reply: CryptoReply;
  try {
    reply = { job: m.job, buffer: m.buffer, ...run(m) };
  } catch (err) {
    const e = err as { code?: string; message?: string; details?: { object?: string } };
    const error = { code: e.code ?? 'E_INTERNAL', message: e.message ?? String(err), ...(e.details?.object ? { object: e.details.object } : {}) };
    reply = { job: m.job, buffer: m.buffer, length: 0, uncompressedLength: 0, error };
  }
  parentPort!.postMessage(reply, [reply.buffer]);
});

import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { BackupError, type ErrorCode } from '../errors.js';
import type { Compression } from '../manifest.js';
import { chainDecoders } from './chunk-stages.js';
import { createChunkDecoder, type ChunkDecoder } from './decoder.js';
import { ExtractionGuard, type TreeStats } from './tar-extract.js';
import { TarScanner } from './tar-scan.js';
import { threadModule } from './threads.js';

/**
 * A tar scanner for verification: every header is checked, and an entry a restore would refuse
 * (a FIFO, "..", a symlink leading out) fails it.
 */
export function verifyingTarScanner(label: string): TarScanner {
  const guard = new ExtractionGuard();
  return new TarScanner(label, {
    onEntry: (entry) => {
      const reason = guard.check(entry);
      if (reason) throw new BackupError('E_INTEGRITY', `${label}: archive entry ${JSON.stringify(entry.path)} would be refused by a restore: ${reason}`);
    },
  });
}

export interface StoredScanOptions {
  compression: Compression;
  label: string;
  /** A tree artifact: its tar headers are checked too. */
  tree: boolean;
  /** The stage after compression (decryption), undone first: built in the thread from its module. */
  decoder?: ThreadDecoderSpec | undefined;
}

/**
 * How a worker thread undoes a stage after compression: `module` (a JavaScript file URL) exports
 * `createThreadDecoder(data)`, which returns a ChunkDecoder. `data` is structured-cloned.
 */
export interface ThreadDecoderSpec {
  module: string;
  data: unknown;
}

/** Builds the decoder of `spec` (in the thread that uses it). */
export async function loadThreadDecoder(spec: ThreadDecoderSpec): Promise<ChunkDecoder> {
  const loaded = (await import(spec.module)) as { createThreadDecoder(data: unknown): ChunkDecoder };
  return loaded.createThreadDecoder(spec.data);
}

/** What reading a stored artifact found: to be compared with what the writer recorded. */
export interface StoredScanOutcome {
  bytes: number;
  sha256: string;
  decoded: number;
  tree?: TreeStats;
  /** Why the bytes did not decode (or the tar did not parse); the size and sha256 are still complete. */
  error?: { code: ErrorCode; message: string; details: Record<string, unknown> };
}

/**
 * The checks of verification over stored bytes fed in order: size and sha256, decoding, and for
 * trees every tar header. After a decoding failure the rest is still hashed, so that altered
 * stored bytes can be told apart from a bad encoder.
 */
export class StoredArtifactScan {
  readonly #hash: Hash = createHash('sha256');
  readonly #decoder: ChunkDecoder;
  readonly #scanner: TarScanner | undefined;
  readonly #onDecoded: (data: Buffer) => void;
  #bytes = 0;
  #decoded = 0;
  #error: BackupError | undefined;

  /** `first`: the decoder of a stage after compression (decryption), run before decompression. */
  constructor(options: StoredScanOptions, first?: ChunkDecoder) {
    const decoder = createChunkDecoder(options.compression, options.label);
    if (!decoder) throw new BackupError('E_ARCHIVE', `${options.label}: ${options.compression} cannot be verified while it is written`);
    this.#decoder = first ? chainDecoders(first, decoder) : decoder;
    this.#scanner = options.tree ? verifyingTarScanner(options.label) : undefined;
    const scanner = this.#scanner;
    this.#onDecoded = (data) => {
      this.#decoded += data.length;
      scanner?.update(data);
    };
  }

  update(chunk: Buffer): void {
    this.#bytes += chunk.length;
    this.#hash.update(chunk);
    if (this.#error) return;
    try {
      this.#decoder.update(chunk, this.#onDecoded);
    } catch (err) {
      this.#error = asBackupError(err);
    }
  }

  end(): StoredScanOutcome {
    let tree: TreeStats | undefined;
    if (!this.#error) {
      try {
        this.#decoder.end();
        tree = this.#scanner?.end();
      } catch (err) {
        this.#error = asBackupError(err);
      }
    }
    return {
      bytes: this.#bytes,
      sha256: this.#hash.digest('hex'),
      decoded: this.#decoded,
      ...(tree ? { tree: { ...tree } } : {}),
      ...(this.#error ? { error: { code: this.#error.code, message: this.#error.message, details: this.#error.details } } : {}),
    };
  }
}

function asBackupError(err: unknown): BackupError {
  return err instanceof BackupError ? err : new BackupError('E_INTEGRITY', (err as Error).message, { cause: err });
}

/**
 * Compares what was read back with what the writer recorded, with the messages of the checks
 * after writing; returns the tree's stats.
 */
export function checkStoredScan(outcome: StoredScanOutcome, expected: { bytes: number; sha256: string; rawBytes: number }, label: string): TreeStats | undefined {
  if (outcome.bytes !== expected.bytes) {
    throw new BackupError('E_INTEGRITY', `${label}: ${outcome.bytes < expected.bytes ? 'truncated' : 'larger than written'}: ${outcome.bytes} of ${expected.bytes} bytes`, {
      details: { expectedBytes: expected.bytes, actualBytes: outcome.bytes },
    });
  }
  if (outcome.sha256 !== expected.sha256) {
    throw new BackupError('E_INTEGRITY', `${label}: sha256 mismatch (expected ${expected.sha256}, got ${outcome.sha256}): the artifact is corrupt`, {
      details: { expected: expected.sha256, actual: outcome.sha256 },
    });
  }
  if (outcome.error) throw new BackupError(outcome.error.code, outcome.error.message, { details: outcome.error.details });
  if (outcome.decoded !== expected.rawBytes) {
    throw new BackupError('E_INTEGRITY', `${label}: decodes to ${outcome.decoded} bytes, the manifest says ${expected.rawBytes}`);
  }
  return outcome.tree;
}

/** Slots of the state shared with the worker (BigInt64Array). */
export const FollowState = {
  /** Bumped after every change, so the worker never sleeps through one. */
  generation: 0,
  /** Length of the file's fully written prefix. */
  stored: 1,
  /** 0 while writing, 1 when the writer has finished, 2 when the reader should stop. */
  phase: 2,
} as const;

const THREAD = threadModule('verify-worker', import.meta.url);

/**
 * Verifies an artifact file while it is being written: a worker thread reads the file behind the
 * writer (only the prefix the writer reports as fully written), hashes, decodes and scans it, so
 * that verification uses the moments compression leaves a core idle instead of starting after
 * the last byte. The bytes are read back from the file, never taken from the writer's buffers.
 */
export class FollowingVerifier {
  /** False where the thread's compiled module is missing. */
  static readonly available = THREAD !== undefined;

  readonly #state = new BigInt64Array(new SharedArrayBuffer(3 * 8));
  readonly #worker: Worker;
  readonly #result: Promise<StoredScanOutcome>;

  constructor(file: string, options: StoredScanOptions) {
    this.#worker = new Worker(THREAD!, { workerData: { file, options, state: this.#state } });
    this.#result = new Promise((resolve, reject) => {
      this.#worker.once('message', resolve);
      this.#worker.once('error', reject);
      this.#worker.once('exit', (code) => reject(new BackupError('E_VERIFY', `the verifying thread stopped early (exit code ${code})`)));
    });
    this.#result.catch(() => {});
  }

  /** The file's first `bytes` bytes are written. */
  advance(bytes: number): void {
    Atomics.store(this.#state, FollowState.stored, BigInt(bytes));
    this.#signal();
  }

  /** The writer has finished: resolves with what the worker read, once it has read everything. */
  async finish(): Promise<StoredScanOutcome> {
    Atomics.store(this.#state, FollowState.phase, 1n);
    this.#signal();
    try {
      return await this.#result;
    } finally {
      await this.#worker.terminate();
    }
  }

  /** Stops reading (the write failed). */
  async abort(): Promise<void> {
    Atomics.store(this.#state, FollowState.phase, 2n);
    this.#signal();
    await this.#worker.terminate();
  }

  #signal(): void {
    Atomics.add(this.#state, FollowState.generation, 1n);
    Atomics.notify(this.#state, FollowState.generation);
  }
}

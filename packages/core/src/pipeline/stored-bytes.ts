import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BackupError } from '../errors.js';

/**
 * Checks stored bytes against the manifest as they are read: fails as soon as there are too many,
 * and at `end` if there are too few or the sha256 differs.
 */
export class StoredBytesCheck {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  #actual: string | undefined;
  readonly #expected: { bytes: number; sha256: string };
  readonly #label: string;

  constructor(expected: { bytes: number; sha256: string }, label: string) {
    this.#expected = expected;
    this.#label = label;
  }

  update(chunk: Buffer): void {
    this.count(chunk);
    this.#hash.update(chunk);
  }

  /** Counts without hashing: the sha256 is computed elsewhere and given to `expectSha256`. */
  count(chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#expected.bytes) {
      throw new BackupError('E_INTEGRITY', `${this.#label}: larger than recorded (${this.#expected.bytes} bytes): the artifact was altered`, {
        details: { expectedBytes: this.#expected.bytes, actualBytes: this.#bytes },
      });
    }
  }

  expectSha256(actual: string): void {
    this.#actual = actual;
  }

  end(): void {
    if (this.#bytes !== this.#expected.bytes) {
      throw new BackupError('E_INTEGRITY', `${this.#label}: truncated: ${this.#bytes} of ${this.#expected.bytes} bytes`, {
        details: { expectedBytes: this.#expected.bytes, actualBytes: this.#bytes },
      });
    }
    const actual = this.#actual ?? this.#hash.digest('hex');
    if (actual !== this.#expected.sha256) {
      throw new BackupError('E_INTEGRITY', `${this.#label}: sha256 mismatch (expected ${this.#expected.sha256}, got ${actual}): the artifact is corrupt`, {
        details: { expected: this.#expected.sha256, actual },
      });
    }
  }
}

/**
 * StoredBytesCheck as a stream stage: downstream stages only see the end of the stream if the
 * check passed.
 */
export class IntegrityCheck extends Transform {
  readonly #check: StoredBytesCheck;

  constructor(expected: { bytes: number; sha256: string }, label: string) {
    super({ highWaterMark: 1024 * 1024 });
    this.#check = new StoredBytesCheck(expected, label);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#check.update(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#check.end();
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }
}

/**
 * Checks decoded bytes against the manifest's `rawBytes`: fails as soon as there are more (so a
 * decompression bomb stops before it fills the disk), and at the end if there are fewer.
 */
export class DecodedSizeCheck extends Transform {
  #bytes = 0;
  readonly #expected: number;
  readonly #label: string;

  constructor(expected: number, label: string) {
    super({ highWaterMark: 1024 * 1024 });
    this.#expected = expected;
    this.#label = label;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#expected) {
      callback(decodedTooLarge(this.#expected, this.#label));
      return;
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#bytes !== this.#expected) {
      callback(new BackupError('E_INTEGRITY', `${this.#label}: decodes to ${this.#bytes} bytes, the manifest records ${this.#expected}`));
      return;
    }
    callback();
  }
}

export function decodedTooLarge(expected: number, label: string): BackupError {
  return new BackupError(
    'E_INTEGRITY',
    `${label}: decodes to more than the ${expected} bytes the manifest records: refused (a decompression bomb, or an altered artifact)`,
  );
}

/**
 * Bytes that do not decode (a decompressor's or a tar parser's complaint): E_INTEGRITY, marked
 * so that a reader checks the stored bytes for the change that explains it.
 */
export function undecodableError(message: string, cause?: unknown): BackupError {
  return new BackupError('E_INTEGRITY', message, { details: { undecodable: true }, ...(cause === undefined ? {} : { cause }) });
}

export function isUndecodable(err: BackupError): boolean {
  return err.details.undecodable === true;
}

/** Makes a decoder's error (zstd, gzip, gpg) name the artifact. */
export function decodeError(err: unknown, label: string): BackupError {
  if (err instanceof BackupError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return undecodableError(`${label}: cannot be decoded: ${message}`, err);
}

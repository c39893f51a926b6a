import { createHash, type Hash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform, Writable, pipeline, type Duplex, type Readable, type TransformCallback } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { BackupError } from './errors.js';
import { DIR_MODE, openPrivate } from './fs.js';
import type { ArtifactAccess, DecoderAlternatives, Hooks } from './hooks.js';
import type { Logger } from './log.js';
import { joinPlainName, type ArtifactRecord, type Manifest } from './manifest.js';
import { createDecompressor } from './pipeline/compression.js';
import { chainDecoders } from './pipeline/chunk-stages.js';
import { createChunkDecoder, type ChunkDecoder } from './pipeline/decoder.js';
import { HashWorker } from './pipeline/hash-worker.js';
import { ProgramRun, type ProgramSpec } from './pipeline/program.js';
import type { Repository } from './repository.js';
import { StagingArea } from './staging.js';

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

/**
 * A private scratch area, removed by `dispose`: marked folders in backupRoot's staging/ when
 * backupRoot exists (see StagingArea), else in the system's temporary folder.
 */
export class Scratch {
  readonly #staging: StagingArea | undefined;
  #dirs: string[] = [];

  constructor(backupRoot: string) {
    this.#staging = existsSync(backupRoot) ? new StagingArea(backupRoot) : undefined;
  }

  async dir(label: string): Promise<string> {
    let dir: string;
    if (this.#staging) dir = await this.#staging.scratch(label);
    else {
      dir = await fsp.mkdtemp(path.join(os.tmpdir(), `sutazai-scratch-${label.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}-`));
      await fsp.chmod(dir, DIR_MODE);
    }
    this.#dirs.push(dir);
    return dir;
  }

  async dispose(): Promise<void> {
    const dirs = this.#dirs;
    this.#dirs = [];
    await Promise.all(dirs.map((d) => (this.#staging ? this.#staging.discard(d) : fsp.rm(d, { recursive: true, force: true }))));
  }
}

/** How to undo the stages after compression, as the encryption plugins said. */
interface DecodingStages {
  factories: (() => Duplex)[];
  alternatives: DecoderAlternatives[];
  undecodable: string | undefined;
}

/** Reads one artifact of one snapshot back out of a repository. */
export class ArtifactReader implements ArtifactAccess {
  readonly repository: Repository;
  readonly manifest: Manifest;
  readonly artifact: ArtifactRecord;
  readonly logger: Logger;
  // Plain fields, not #private ones: hooks get views made with Object.create(reader).
  private readonly hooks: Hooks;
  private readonly scratch: Scratch;

  constructor(args: { hooks: Hooks; repository: Repository; manifest: Manifest; artifact: ArtifactRecord; logger: Logger; scratch: Scratch }) {
    this.hooks = args.hooks;
    this.repository = args.repository;
    this.manifest = args.manifest;
    this.artifact = args.artifact;
    this.logger = args.logger;
    this.scratch = args.scratch;
  }

  get label(): string {
    return `${this.repository.name}: ${this.manifest.id}/${this.artifact.file}`;
  }

  private decodingState: Promise<DecodingStages> | undefined;

  /** Asks the encryption plugins (once) how to undo their stage. */
  private decoding(): Promise<DecodingStages> {
    this.decodingState ??= (async () => {
      const factories: (() => Duplex)[] = [];
      const alternatives: DecoderAlternatives[] = [];
      let undecodable: string | undefined;
      if (this.artifact.encryption) {
        await this.hooks.decode.promise({
          manifest: this.manifest,
          artifact: this.artifact,
          addDecoder: (_name, create, other) => {
            factories.push(create);
            alternatives.push(other ?? {});
          },
          cannotDecode: (reason) => (undecodable ??= reason),
        });
        if (factories.length === 0 && !undecodable) {
          throw new BackupError(
            'E_ARCHIVE',
            `${this.label} is encrypted (${this.artifact.encryption.method}) but no encryption plugin that can read it is configured`,
          );
        }
      }
      return { factories, alternatives, undecodable };
    })();
    return this.decodingState;
  }

  /** Why this host cannot decode the artifact (by design), or undefined when it can. */
  async undecodable(): Promise<string | undefined> {
    return (await this.decoding()).undecodable;
  }

  /** The stream stages that decode the stored bytes: decryption, then (unless told not to) decompression. */
  async decoders(options: { decompress?: boolean } = {}): Promise<Duplex[]> {
    const { factories, undecodable } = await this.decoding();
    if (undecodable) throw new BackupError('E_CONFIG', `${this.label}: ${undecodable}`);
    const decoders = factories.map((create) => create());
    const decompress = options.decompress === false ? undefined : createDecompressor(this.artifact.compression);
    if (decompress) decoders.push(decompress);
    return decoders;
  }

  /** Reads the stored bytes and checks their size and sha256, without decoding them. */
  async checkStored(): Promise<void> {
    const stored = await this.repository.openArtifact(this.manifest.id, this.artifact.file);
    await pipelineAsync(stored, new IntegrityCheck(this.artifact, this.label), async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source);
    });
  }

  async openDecoded(options: { decompress?: boolean } = {}): Promise<Readable> {
    const decoders = await this.decoders(options);
    const stored = await this.repository.openArtifact(this.manifest.id, this.artifact.file);
    const check = new IntegrityCheck(this.artifact, this.label);
    const sizeCheck = options.decompress === false ? [] : [new DecodedSizeCheck(this.artifact.rawBytes, this.label)];
    const chain: (Readable | Duplex)[] = [stored, check, ...decoders, ...sizeCheck];
    const last = chain.at(-1) as Readable;
    pipeline(chain as unknown as [Readable, ...Duplex[]], (err) => {
      if (err && !last.destroyed) last.destroy(decodeError(err, this.label));
    });
    return last;
  }

  /**
   * Reads the artifact with the checks of `openDecoded` (size and sha256 of the stored bytes),
   * decodes it, and hands each decoded piece to `onData`: a view valid only during the call.
   * Decoding runs in the same loop as the read; with encryption only the decryption is a stream stage.
   * Returns the number of decoded bytes.
   */
  async readDecoded(onData: (data: Buffer) => void): Promise<number> {
    let decoded = 0;
    let decoder = createChunkDecoder(this.artifact.compression, this.label);
    if (!decoder) {
      for await (const chunk of await this.openDecoded()) {
        decoded += (chunk as Buffer).length;
        onData(chunk as Buffer);
      }
      return decoded;
    }
    const count = (data: Buffer) => {
      decoded += data.length;
      if (decoded > this.artifact.rawBytes) throw decodedTooLarge(this.artifact.rawBytes, this.label);
      onData(data);
    };
    if (this.artifact.encryption) {
      const { alternatives, undecodable } = await this.decoding();
      if (undecodable) throw new BackupError('E_CONFIG', `${this.label}: ${undecodable}`);
      const only = alternatives.length === 1 ? alternatives[0]! : {};
      if (only.chunk) {
        // In-process decryption: one more step in the same synchronous loop, before decompression.
        decoder = chainDecoders(only.chunk(), decoder);
      } else {
        const file = only.program ? await this.repository.openArtifactFile(this.manifest.id, this.artifact.file) : undefined;
        if (only.program && file) return this.readThroughProgram(only.program(), file, decoder, count);
        // Decryption is a stream stage (a child process); decompression stays synchronous after it.
        const decrypted = await this.openDecoded({ decompress: false });
        try {
          for await (const chunk of decrypted) decoder.update(chunk as Buffer, count);
        } catch (err) {
          decrypted.destroy();
          throw err;
        }
        decoder.end();
        return decoded;
      }
    }
    const check = new StoredBytesCheck(this.artifact, this.label);
    const file = await this.repository.openArtifactFile(this.manifest.id, this.artifact.file);
    if (file) {
      // Large artifacts: the sha256 runs on a worker thread beside the decoding.
      const hasher = this.artifact.bytes >= HASH_OFFLOAD_FROM ? new HashWorker(READ_CHUNK) : undefined;
      try {
        for await (const chunk of readChunks(file, hasher ? () => hasher.acquire() : undefined)) {
          if (hasher) {
            check.count(chunk);
            decoder.update(chunk, count);
            hasher.update(chunk);
          } else {
            check.update(chunk);
            decoder.update(chunk, count);
          }
        }
        if (hasher) check.expectSha256(await hasher.digest());
      } finally {
        await hasher?.dispose();
        await file.close();
      }
    } else {
      const stored = await this.repository.openArtifact(this.manifest.id, this.artifact.file);
      try {
        for await (const chunk of stored) {
          check.update(chunk as Buffer);
          decoder.update(chunk as Buffer, count);
        }
      } catch (err) {
        stored.destroy();
        throw err;
      }
    }
    check.end();
    decoder.end();
    return decoded;
  }

  /**
   * Decodes a local artifact with a program (decryption) that reads the file itself, while the
   * stored bytes are read again beside it for their size and sha256 (on a worker thread when large).
   * The decoded bytes count only if both succeed.
   */
  private async readThroughProgram(spec: ProgramSpec, stdin: fsp.FileHandle, decoder: ChunkDecoder, onData: (data: Buffer) => void): Promise<number> {
    let decoded = 0;
    let run: ProgramRun;
    try {
      run = new ProgramRun(spec, {
        stdin: stdin.fd,
        onOutput: (data) => {
          decoder.update(data, (d) => {
            decoded += d.length;
            onData(d);
          });
        },
      });
    } finally {
      await stdin.close();
    }
    const stored = (async () => {
      const check = new StoredBytesCheck(this.artifact, this.label);
      const file = await this.repository.openArtifactFile(this.manifest.id, this.artifact.file);
      const hasher = this.artifact.bytes >= HASH_OFFLOAD_FROM ? new HashWorker(READ_CHUNK) : undefined;
      try {
        for await (const chunk of readChunks(file!, hasher ? () => hasher.acquire() : undefined)) {
          if (hasher) {
            check.count(chunk);
            hasher.update(chunk);
          } else check.update(chunk);
        }
        if (hasher) check.expectSha256(await hasher.digest());
      } finally {
        await hasher?.dispose();
        await file!.close();
      }
      check.end();
    })();
    const [storedResult, decodeResult] = await Promise.allSettled([stored, run.done]);
    // Altered stored bytes explain a failed decryption: report them first.
    if (storedResult.status === 'rejected') {
      run.fail(storedResult.reason as Error);
      throw storedResult.reason;
    }
    if (decodeResult.status === 'rejected') throw decodeError(decodeResult.reason, this.label);
    decoder.end();
    return decoded;
  }

  /**
   * Explains a failure while reading: a decoder's complaint ("data corruption") usually means the
   * stored bytes changed, so check them alone and report the checksum mismatch when there is one.
   */
  async explain(err: unknown): Promise<BackupError> {
    if (err instanceof BackupError && err.code === 'E_INTEGRITY' && !err.message.includes('cannot be')) return err;
    try {
      const stored = await this.repository.openArtifact(this.manifest.id, this.artifact.file);
      await pipelineAsync(stored, new IntegrityCheck(this.artifact, this.label), new Writable({ write: (_c, _e, cb) => cb() }));
    } catch (checkError) {
      if (checkError instanceof BackupError && checkError.code === 'E_INTEGRITY') return checkError;
    }
    return err instanceof BackupError ? err : decodeError(err, this.label);
  }

  async materialize(): Promise<string> {
    // The manifest's grammar was checked when it was read; checked again where it becomes a path.
    const name = this.artifact.filename ?? this.artifact.file;
    const file = joinPlainName(await this.tempDir(), name, this.label);
    const handle = await openPrivate(file, 'wx');
    await pipelineAsync(await this.openDecoded(), handle.createWriteStream());
    return file;
  }

  tempDir(): Promise<string> {
    return this.scratch.dir(`${this.manifest.id}-${this.artifact.source}`);
  }
}

const READ_CHUNK = 1024 * 1024;
const HASH_OFFLOAD_FROM = 64 * 1024 * 1024;

/** Reads kept in flight: one at a time leaves a cold disk idle between requests. */
const READS_AHEAD = 4;

/**
 * A file's content in chunks, the next reads running while a chunk is used. From reused buffers,
 * or from `acquire` when chunks are handed on to another thread.
 */
async function* readChunks(file: fsp.FileHandle, acquire?: () => Promise<Buffer>): AsyncGenerator<Buffer> {
  const spare: Buffer[] = acquire ? [] : Array.from({ length: READS_AHEAD }, () => Buffer.allocUnsafe(READ_CHUNK));
  const reads: { buffer: Buffer; offset: number; read: Promise<{ bytesRead: number }> }[] = [];
  let asked = 0;
  const ask = async () => {
    while (reads.length < READS_AHEAD && (acquire || spare.length)) {
      const buffer = spare.pop() ?? (await acquire!());
      reads.push({ buffer, offset: asked, read: file.read(buffer, 0, READ_CHUNK, asked) });
      asked += READ_CHUNK;
    }
  };
  try {
    await ask();
    for (;;) {
      const next = reads.shift()!;
      const { bytesRead } = await next.read;
      if (bytesRead === 0) return;
      if (bytesRead < READ_CHUNK) {
        // Short (the end, or a file still growing): what was asked beyond is asked again.
        for (const r of reads.splice(0)) {
          await r.read.catch(() => {});
          spare.push(r.buffer);
        }
        asked = next.offset + bytesRead;
      }
      yield next.buffer.subarray(0, bytesRead);
      if (!acquire) spare.push(next.buffer);
      await ask();
    }
  } finally {
    await Promise.allSettled(reads.map((r) => r.read));
  }
}

function decodedTooLarge(expected: number, label: string): BackupError {
  return new BackupError(
    'E_INTEGRITY',
    `${label}: decodes to more than the ${expected} bytes the manifest records: refused (a decompression bomb, or an altered artifact)`,
  );
}

/** Makes a decoder's error (zstd, gzip, gpg) name the artifact. */
export function decodeError(err: unknown, label: string): BackupError {
  if (err instanceof BackupError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BackupError('E_INTEGRITY', `${label}: cannot be decoded: ${message}`, { cause: err });
}

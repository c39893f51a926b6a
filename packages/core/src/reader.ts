import type { promises as fsp } from 'node:fs';
import { Writable, pipeline, type Duplex, type Readable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { CheckResult } from './checks.js';
import { BackupError } from './errors.js';
import { openPrivate } from './fs.js';
import type { DecoderAlternatives, Hooks } from './hooks.js';
import type { Logger } from './log.js';
import { joinPlainName, type ArtifactRecord, type Manifest } from './manifest.js';
import { chainDecoders } from './pipeline/chunk-stages.js';
import { createDecompressor } from './pipeline/compression.js';
import { createChunkDecoder, type ChunkDecoder } from './pipeline/decoder.js';
import { checkStoredScan, verifyingTarScanner, type StoredScanOutcome } from './pipeline/follow-verify.js';
import { ProgramRun, type ProgramSpec } from './pipeline/program.js';
import { DecodedSizeCheck, decodedTooLarge, decodeError, IntegrityCheck, isUndecodable, StoredBytesCheck } from './pipeline/stored-bytes.js';
import { readStoredFile } from './pipeline/stored-file.js';
import type { ReadableArtifact } from './repository-format.js';
import type { Repository } from './repository.js';
import type { Scratch } from './scratch.js';

/** How to undo the stages after compression, as the encryption plugins said. */
interface DecodingStages {
  factories: (() => Duplex)[];
  alternatives: DecoderAlternatives[];
  undecodable: string | undefined;
}

export interface ArtifactReaderOptions {
  hooks: Hooks;
  repository: Repository;
  manifest: Manifest;
  artifact: ArtifactRecord;
  logger: Logger;
  scratch: Scratch;
  /** What a thread read back while the artifact was written (the run's own artifacts): `check` uses it. */
  followed?: Promise<StoredScanOutcome> | undefined;
}

/** Reads one artifact of one snapshot back out of a repository in the tar layout. */
export class ArtifactReader implements ReadableArtifact {
  readonly repository: Repository;
  readonly manifest: Manifest;
  readonly artifact: ArtifactRecord;
  readonly logger: Logger;
  readonly #hooks: Hooks;
  readonly #scratch: Scratch;
  readonly #followed: Promise<StoredScanOutcome> | undefined;
  #decoding: Promise<DecodingStages> | undefined;

  constructor(args: ArtifactReaderOptions) {
    this.#hooks = args.hooks;
    this.repository = args.repository;
    this.manifest = args.manifest;
    this.artifact = args.artifact;
    this.logger = args.logger;
    this.#scratch = args.scratch;
    this.#followed = args.followed;
  }

  get label(): string {
    return `${this.repository.name}: ${this.manifest.id}/${this.artifact.file}`;
  }

  /** Asks the encryption plugins (once) how to undo their stage. */
  #stages(): Promise<DecodingStages> {
    this.#decoding ??= (async () => {
      const factories: (() => Duplex)[] = [];
      const alternatives: DecoderAlternatives[] = [];
      let undecodable: string | undefined;
      if (this.artifact.encryption) {
        await this.#hooks.decode.promise({
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
    return this.#decoding;
  }

  async undecodable(): Promise<string | undefined> {
    return (await this.#stages()).undecodable;
  }

  /** The stream stages that decode the stored bytes: decryption, then (unless told not to) decompression. */
  async decoders(options: { decompress?: boolean } = {}): Promise<Duplex[]> {
    const { factories, undecodable } = await this.#stages();
    if (undecodable) throw new BackupError('E_CONFIG', `${this.label}: ${undecodable}`);
    const decoders = factories.map((create) => create());
    const decompress = options.decompress === false ? undefined : createDecompressor(this.artifact.compression);
    if (decompress) decoders.push(decompress);
    return decoders;
  }

  /** Reads the stored bytes and checks their size and sha256, without decoding them. */
  async checkStored(): Promise<CheckResult[]> {
    const stored = await this.repository.openArtifact(this.manifest.id, this.artifact.file);
    await pipelineAsync(stored, new IntegrityCheck(this.artifact, this.label), async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source);
    });
    return [{ name: 'sha256', ok: true }];
  }

  /**
   * Size, sha256, decoding and (for trees) every tar header: read now, or taken from what a
   * thread read back while the artifact was written.
   */
  async check(): Promise<CheckResult[]> {
    const { artifact } = this;
    if (this.#followed) {
      const stats = checkStoredScan(await this.#followed, artifact, this.label);
      return [{ name: 'sha256', ok: true }, ...(stats ? [{ name: 'tar', ok: true, detail: `${stats.files} files, ${stats.directories} folders, ${stats.symlinks} symlinks` }] : [])];
    }
    const decodesTo = (raw: number) => {
      if (raw !== artifact.rawBytes) throw new BackupError('E_INTEGRITY', `${this.label}: decodes to ${raw} bytes, the manifest says ${artifact.rawBytes}`);
    };
    if (artifact.type !== 'tree') {
      decodesTo(await this.readDecoded(() => {}));
      return [{ name: 'sha256', ok: true }];
    }
    // A tree that a restore would refuse (a FIFO, "..", a symlink leading out) fails verification.
    const scanner = verifyingTarScanner(this.label);
    const raw = await this.readDecoded((data) => scanner.update(data));
    const stats = scanner.end();
    decodesTo(raw);
    return [
      { name: 'sha256', ok: true },
      { name: 'tar', ok: true, detail: `${stats.files} files, ${stats.directories} folders, ${stats.symlinks} symlinks` },
    ];
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
      const { alternatives, undecodable } = await this.#stages();
      if (undecodable) throw new BackupError('E_CONFIG', `${this.label}: ${undecodable}`);
      const only = alternatives.length === 1 ? alternatives[0]! : {};
      if (only.chunk) {
        // In-process decryption: one more step in the same synchronous loop, before decompression.
        decoder = chainDecoders(only.chunk(), decoder);
      } else {
        const file = only.program ? await this.repository.openArtifactFile(this.manifest.id, this.artifact.file) : undefined;
        if (only.program && file) return this.#readThroughProgram(only.program(), file, decoder, count);
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
      const using = decoder;
      await readStoredFile(file, this.artifact.bytes, check, (chunk) => using.update(chunk, count));
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
  async #readThroughProgram(spec: ProgramSpec, stdin: fsp.FileHandle, decoder: ChunkDecoder, onData: (data: Buffer) => void): Promise<number> {
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
      await readStoredFile(file!, this.artifact.bytes, check);
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
    if (err instanceof BackupError && err.code === 'E_INTEGRITY' && !isUndecodable(err)) return err;
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
    return this.#scratch.dir(`${this.manifest.id}-${this.artifact.source}`);
  }
}

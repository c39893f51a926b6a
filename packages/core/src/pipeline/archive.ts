import { availableParallelism } from 'node:os';
import { PassThrough, Readable, type Duplex, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openPrivate } from '../fs.js';
import type { Compression } from '../manifest.js';
import type { ChunkEncoder } from './chunk-stages.js';
import { ArtifactFile, PipeOutput, StreamOutput, type ArtifactOutput } from './artifact-output.js';
import { createCompressor, DEFAULT_ZSTD_LEVEL, isStreamOnly } from './compression.js';
import { PlainEncoder, ZstdEncoder, type ArtifactEncoder } from './encoder.js';
import { FileSink } from './file-sink.js';
import { ByteCounter } from './hash.js';
import { ProgramRun, type ProgramSpec } from './program.js';
import { IncompressibleBytes, type TarPiece } from './tar-pack.js';

export interface WrittenArtifact {
  /** Stored size and sha256 (after compression and encryption). */
  bytes: number;
  sha256: string;
  /** Size before compression. */
  rawBytes: number;
}

export interface WriteArtifactOptions {
  compression: Compression;
  compressionLevel?: number | undefined;
  /** zstd worker threads; default: one per core. */
  threads?: number | undefined;
  /** Stages after compression (encryption). */
  transforms?: Duplex[];
  /**
   * Or one program after compression (encryption), fed through a pipe; its output is written
   * and hashed in place with the pooled writes.
   */
  program?: ProgramSpec;
  /** Or one synchronous stage after compression, applied in place of the pooled writes (zstd or none only). */
  chunked?: ChunkEncoder;
  onProgress?: (rawBytes: number) => void;
  /**
   * Told the length of the file's fully written prefix each time it grows, so a reader can follow
   * the writer. Only with the pooled writes (zstd or none, without `transforms` or `program`).
   */
  onStored?: (bytes: number) => void;
  signal?: AbortSignal;
}

/**
 * Streams `input` (a stream, or the pieces of `tarPieces`) through compression and any further
 * stages into a new private file, counting and hashing the stored bytes in the same pass.
 */
export async function writeArtifact(input: Readable | AsyncIterable<TarPiece>, file: string, options: WriteArtifactOptions): Promise<WrittenArtifact> {
  if (isStreamOnly(options.compression)) {
    // gzip (and zstd without zstd-napi) is a stream stage: so must every stage after it be.
    if (options.program || options.chunked) throw new Error(`writeArtifact: with ${options.compression} here, give the stages after compression as \`transforms\``);
    return writeThroughStreams(input, file, options);
  }
  const handle = await openPrivate(file, 'wx');
  let output: ArtifactOutput;
  let stored: () => { bytes: number; sha256: string };
  let program: { run: ProgramRun; sink: ArtifactFile; filler: FileFiller } | undefined;
  if (options.program) {
    const sink = new ArtifactFile(handle);
    let filler: FileFiller | undefined;
    let run: ProgramRun;
    try {
      run = new ProgramRun(options.program, { stdin: 'pipe', onOutput: (data) => filler!.write(data) });
    } catch (err) {
      await handle.close();
      throw err;
    }
    filler = new FileFiller(sink, run);
    program = { run, sink, filler };
    output = new PipeOutput(run.stdin);
    stored = () => ({ bytes: sink.bytes, sha256: sink.sha256 });
  } else if (options.transforms?.length) {
    // Encryption and the like are streams: compressed bytes go through them into a FileSink.
    const head = new PassThrough({ highWaterMark: 1024 * 1024 });
    const sink = new FileSink(handle, { hash: true });
    output = new StreamOutput(head, pipeline([head, ...options.transforms, sink] as unknown as [Readable, Writable]));
    stored = () => ({ bytes: sink.bytes, sha256: sink.sha256 });
  } else {
    const sink = new ArtifactFile(handle, options.chunked, options.onStored ? { onStored: options.onStored } : {});
    output = sink;
    stored = () => ({ bytes: sink.bytes, sha256: sink.sha256 });
  }
  const encoder: ArtifactEncoder =
    options.compression === 'zstd'
      ? new ZstdEncoder(output, { level: options.compressionLevel ?? DEFAULT_ZSTD_LEVEL, workers: zstdWorkers(options.threads) })
      : new PlainEncoder(output);
  let rawBytes = 0;
  try {
    for await (const piece of input) {
      options.signal?.throwIfAborted();
      if (piece instanceof IncompressibleBytes) {
        rawBytes += piece.data.length;
        await encoder.store(piece.data);
      } else {
        rawBytes += (piece as Buffer).length;
        await encoder.write(piece as Buffer);
      }
      options.onProgress?.(rawBytes);
    }
    options.signal?.throwIfAborted();
    await encoder.end();
    await output.finish();
    if (program) {
      await program.run.done;
      await program.filler.end();
      await program.sink.finish();
    }
  } catch (err) {
    await output.abort();
    if (input instanceof Readable) input.destroy();
    if (program) {
      // Its stdin is closed now, so the program ends; one that failed says why better than the
      // broken pipe it left behind.
      const failure = await settled(program.run.done, PROGRAM_END_WAIT_MS);
      program.run.fail(err as Error);
      await program.run.done.catch(() => {});
      await program.sink.abort();
      if (failure && isPipeError(err)) throw failure;
    }
    throw err;
  } finally {
    await handle.close();
  }
  return { ...stored(), rawBytes };
}

const PROGRAM_END_WAIT_MS = 5000;

/** The error `promise` rejects with within `ms`, else undefined. */
async function settled(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise.then(() => undefined, (e: unknown) => e), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A write into a pipe whose reader went away. */
function isPipeError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  return code === 'EPIPE' || code.startsWith('ERR_STREAM_');
}

function zstdWorkers(threads: number | undefined): number {
  const n = threads ?? availableParallelism();
  return n > 1 ? n : 0;
}

async function writeThroughStreams(input: Readable | AsyncIterable<TarPiece>, file: string, options: WriteArtifactOptions): Promise<WrittenArtifact> {
  const source = input instanceof Readable ? input : Readable.from(ownedBuffers(input));
  const raw = new ByteCounter(options.onProgress);
  const handle = await openPrivate(file, 'wx');
  let compressor: Duplex | undefined;
  try {
    // After the file is open: a compressor may be a process, which nothing would end otherwise.
    compressor = createCompressor(options.compression, {
      ...(options.compressionLevel !== undefined ? { level: options.compressionLevel } : {}),
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
    });
  } catch (err) {
    await handle.close();
    throw err;
  }
  const out = new FileSink(handle, { hash: true });
  const stages: (Readable | Duplex | Writable)[] = [source, raw, ...(compressor ? [compressor] : []), ...(options.transforms ?? []), out];
  try {
    await pipeline(stages as unknown as [Readable, Writable], options.signal ? { signal: options.signal } : {});
  } finally {
    await handle.close();
  }
  return { bytes: out.bytes, sha256: out.sha256, rawBytes: raw.bytes };
}

async function* ownedBuffers(pieces: AsyncIterable<TarPiece>): AsyncGenerator<Buffer> {
  for await (const piece of pieces) yield Buffer.from(piece instanceof IncompressibleBytes ? piece.data : piece);
}

/**
 * Copies a program's output into the file's pooled buffers as it arrives. The program's output
 * pauses while every buffer is still being written.
 */
class FileFiller {
  readonly #sink: ArtifactFile;
  readonly #run: ProgramRun;
  #buffer: Buffer | undefined;
  #fill = 0;
  /** Output that arrived while no buffer was free. */
  #held: Buffer | undefined;
  #waiting: Promise<void> | undefined;

  constructor(sink: ArtifactFile, run: ProgramRun) {
    this.#sink = sink;
    this.#run = run;
  }

  /** Takes `data` (valid only during the call); false when the output should pause. */
  write(data: Buffer): boolean {
    while (data.length) {
      if (!this.#buffer) {
        this.#buffer = this.#sink.tryAcquire();
        this.#fill = 0;
        if (!this.#buffer) {
          this.#held = Buffer.from(data);
          this.#waiting = this.#sink.acquire().then(
            (buffer) => {
              this.#buffer = buffer;
              this.#fill = 0;
              const held = this.#held!;
              this.#held = undefined;
              this.#waiting = undefined;
              if (this.write(held)) this.#run.resume();
            },
            (err: unknown) => this.#run.fail(err as Error),
          );
          return false;
        }
      }
      const n = data.copy(this.#buffer, this.#fill);
      this.#fill += n;
      data = data.subarray(n);
      if (this.#fill === this.#buffer.length) {
        this.#sink.submit(this.#buffer, this.#fill);
        this.#buffer = undefined;
      }
    }
    return true;
  }

  /** Submits the last, partly filled buffer. */
  async end(): Promise<void> {
    await this.#waiting;
    if (this.#buffer) this.#sink.submit(this.#buffer, this.#fill);
    this.#buffer = undefined;
  }
}

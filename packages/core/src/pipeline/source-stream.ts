import path from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { startChild } from '../child.js';
import { BackupError } from '../errors.js';
import type { ArtifactProgram, ArtifactSource, ArtifactStream, FileArtifactSpec, OpenArtifactContext } from '../hooks.js';
import { isSecretKey, type SecretRegistry } from '../secrets.js';
import { isReadFromStart } from './read-from-start.js';

/** The bytes of a file artifact as the archive pipeline reads them, owned by core from the first one. */
export interface SourceOutput {
  /** Every byte the source produced, buffered until the pipeline reads it (however late that is). */
  stream: Readable;
  /** Settles when the producer finished: with more meta, or rejecting when it failed. */
  done: Promise<Record<string, unknown> | void> | undefined;
  /**
   * Throws E_SOURCE unless the source's output ended and all of it reached the pipeline
   * (`rawBytes`): a short read must never be stored as the whole artifact.
   */
  checkConsumed(rawBytes: number): void;
}

export interface OpenSourceOptions {
  /** The source instance for messages: `sources.app-db`. */
  plugin: string;
  secrets: SecretRegistry;
}

/**
 * Calls the spec's `open` and takes over what it returns before anything else can run: a program
 * is started here with its stdout read from the start; a stream is checked (refused if anyone read
 * it before us) and piped into a buffer at once, unless it is one already (startChild's stdout).
 * Node drops what a child printed if nobody reads its stdout by the time it exits, and the
 * pipeline only starts reading after a few awaits of its own (opening the file, starting workers).
 */
export async function openSourceOutput(spec: FileArtifactSpec, ctx: OpenArtifactContext, options: OpenSourceOptions): Promise<SourceOutput> {
  const source: ArtifactSource = await spec.open(ctx);
  // No await between here and the stream's adoption.
  if (isProgram(source)) return adopt(runProgram(source, spec, ctx, options), spec, options);
  if (!isStream(source)) {
    throw new BackupError('E_SOURCE', `${options.plugin}: open() of ${spec.name} returned neither { command, args } nor { stream, done }`, {
      plugin: options.plugin,
    });
  }
  return adopt(source, spec, options);
}

function isProgram(source: unknown): source is ArtifactProgram {
  return typeof source === 'object' && source !== null && typeof (source as ArtifactProgram).command === 'string';
}

function isStream(source: unknown): source is ArtifactStream {
  const stream = (source as ArtifactStream | null)?.stream as Partial<Readable> | undefined;
  return typeof stream?.on === 'function' && typeof stream.pipe === 'function';
}

/** Why bytes of `stream` may already be gone, or undefined when nobody has touched it. */
export function lateStreamReason(stream: Readable): string | undefined {
  if (stream.errored) return `had failed (${stream.errored.message})`;
  if (stream.readableEnded) return 'had already ended';
  if (stream.readableDidRead) return 'had already been read from';
  if (stream.destroyed) return 'was already destroyed';
  // A child's stdout that nobody read when the child exited: Node resumed it and dropped its bytes.
  if (stream.readableFlowing === true && stream.listenerCount('data') === 0) return 'was flowing with nobody reading it';
  return undefined;
}

function adopt(opened: ArtifactStream, spec: FileArtifactSpec, options: OpenSourceOptions): SourceOutput {
  const { stream: produced, done } = opened;
  const late = lateStreamReason(produced);
  if (late) {
    done?.catch(() => undefined);
    produced.destroy();
    throw new BackupError(
      'E_SOURCE',
      `${options.plugin}: the stream open() returned for ${spec.name} ${late} when the engine got it, so bytes may be missing: nothing of it is stored. ` +
        'Return { command, args } and let the engine run the program, or a stream nobody has read yet.',
      { plugin: options.plugin, stage: 'archive' },
    );
  }
  let ended = false;
  produced.once('end', () => (ended = true));
  // A startChild stdout is already such a buffer, reading its program from the start: no second one.
  let buffer = produced;
  let bytes: number | undefined;
  if (!isReadFromStart(produced)) {
    const copy = new PassThrough({ highWaterMark: 1024 * 1024 });
    // Errors travel to the copy; a copy destroyed by the pipeline (a failure elsewhere) stops the producer.
    pipeline(produced, copy, () => undefined);
    let counted = 0;
    produced.on('data', (chunk: Buffer | string) => (bytes = counted += chunk.length));
    bytes = 0;
    buffer = copy;
  }
  // A producer that fails (a dump exiting non-zero) fails the stream, even mid-way. The pipeline
  // sees that error when it reads (or `done` reports it): it must not crash us while nobody reads.
  buffer.on('error', () => undefined);
  done?.catch((err: unknown) => buffer.destroy(err instanceof Error ? err : new Error(String(err))));
  return {
    stream: buffer,
    done,
    checkConsumed(rawBytes) {
      if (ended && (bytes === undefined || bytes === rawBytes)) return;
      const what = ended ? `${rawBytes} of its ${bytes} bytes were stored` : `its output did not end (${bytes ?? rawBytes} bytes read)`;
      throw new BackupError('E_SOURCE', `${options.plugin}: ${spec.name} was cut short: ${what}; nothing of it is stored`, {
        plugin: options.plugin,
        stage: 'archive',
      });
    },
  };
}

/** What a program gets of our environment (its own `env` goes on top): enough to find programs and speak the locale. */
const BASE_ENV = /^(PATH|HOME|USER|LOGNAME|SHELL|TMPDIR|TZ|LANG|LANGUAGE|LC_[A-Z_]+)$/;

function runProgram(program: ArtifactProgram, spec: FileArtifactSpec, ctx: OpenArtifactContext, options: OpenSourceOptions): ArtifactStream {
  const { plugin, secrets } = options;
  if (program.cwd !== undefined && !path.isAbsolute(program.cwd)) {
    throw new BackupError('E_SOURCE', `${plugin}: open() of ${spec.name} returned a relative cwd (${program.cwd}): give an absolute folder`, { plugin });
  }
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => BASE_ENV.test(k)));
  for (const [name, value] of Object.entries(program.env ?? {})) {
    if (isSecretKey(name) || /auth|cred/i.test(name)) secrets.add(value);
    env[name] = value;
  }
  const child = startChild({ path: program.command, name: path.basename(program.command) }, program.args ?? [], {
    env,
    cwd: program.cwd,
    what: `${plugin}: ${spec.name}`,
    code: 'E_SOURCE',
    secrets,
    logger: ctx.logger,
    signal: ctx.signal,
    // A shell line's own children stop with it when the run is aborted.
    group: true,
  });
  return { stream: child.stdout!, done: child.exited };
}

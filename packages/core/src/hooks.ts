import type { Duplex, Readable } from 'node:stream';
import { AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, SyncHook } from './vendor/tapable.js';
import type { Destination, DestinationTraits } from './destination.js';
import { BackupError, toPluginError, type ErrorCode } from './errors.js';
import type { Logger } from './log.js';
import type { ChunkEncoder } from './pipeline/chunk-stages.js';
import type { ThreadDecoderSpec } from './pipeline/follow-verify.js';
import type { ChunkDecoder } from './pipeline/decoder.js';
import type { ProgramSpec } from './pipeline/program.js';
import type { ArtifactRecord, EncryptionInfo, Manifest } from './manifest.js';
import type { Notification } from './notify.js';
import type { TreeEntry } from './pipeline/tar-pack.js';
import type { SnapshotRepository } from './repository-format.js';
import type { RetentionPolicy } from './retention.js';
import type { RunReport } from './report.js';

/** What a source asks the engine to archive. */
export type ArtifactSpec = TreeArtifactSpec | FileArtifactSpec;

interface ArtifactSpecBase {
  /**
   * The artifact's file stem: the source name, or `<source>.<part>` for a source with several
   * artifacts (`app-db.sutazai`). The engine appends the extensions.
   */
  name: string;
  /** What a restore test checks against (row counts per table, ...), merged with `done`'s result. */
  meta?: Record<string, unknown>;
}

/** A set of paths archived as a tar, restored as a folder tree under `DIR/<source>/`. */
export interface TreeArtifactSpec extends ArtifactSpecBase {
  type: 'tree';
  /** Absolute paths. */
  paths: string[];
  filter?: (entry: TreeEntry) => boolean;
  /** Replacement content for a file (e.g. with secrets redacted), or null to keep it. */
  transform?: (entry: TreeEntry) => Promise<Buffer | null> | Buffer | null;
}

/** One stream of bytes, restored as one file `DIR/<source>/<filename>`. */
export interface FileArtifactSpec extends ArtifactSpecBase {
  type: 'file';
  /** The extension before compression's: `sqlite`, `pgdump`. */
  ext: string;
  /** The file name a restore writes: `agents.db`, `sutazai.pgdump`. */
  filename: string;
  /**
   * Says where the bytes come from; called when the engine is ready to archive this artifact.
   * Return a program (`{ command, args }`) and the engine runs it and reads its stdout from the
   * first byte: the form that cannot lose output. A stream (`{ stream, done }`) must be one
   * nobody has read yet; the engine takes it over as soon as `open` resolves.
   */
  open(ctx: OpenArtifactContext): Promise<ArtifactSource> | ArtifactSource;
  /** Allow an artifact of zero bytes (by default an empty stream fails: a dump that produced nothing). */
  allowEmpty?: boolean;
}

export interface OpenArtifactContext {
  /** A private scratch folder inside backupRoot for this artifact, removed afterwards. */
  tempDir: string;
  signal: AbortSignal;
  logger: Logger;
}

/** What `open` returns: a program for the engine to run, or a stream the source produces itself. */
export type ArtifactSource = ArtifactProgram | ArtifactStream;

/**
 * A program whose stdout is the artifact. The engine starts it, reads its output from the first
 * byte, and fails the source (quoting the end of its stderr, secrets redacted) when it exits
 * non-zero, is killed, or is stopped because the run was aborted.
 */
export interface ArtifactProgram {
  /** The program: a path, or a name looked up in PATH. Run as is, not through a shell. */
  command: string;
  /** Its arguments. Logged at debug level: secrets belong in `env`, never here. */
  args?: readonly string[];
  /**
   * Added to the few variables the program gets of the engine's environment (PATH, HOME, USER,
   * LANG, LC_*, TZ, TMPDIR). Values under secret-looking names are redacted from messages.
   */
  env?: Readonly<Record<string, string>>;
  /** Its working folder (absolute); default: the engine's. */
  cwd?: string;
}

export interface ArtifactStream {
  /**
   * The bytes. Hand it over unread: the engine refuses (E_SOURCE) a stream that was already read
   * from, ended, destroyed, or flowing with nobody reading it, because bytes may have been lost.
   * A child process's stdout is safe only if `open` returns right after spawning it; prefer the
   * program form, or core's `startChild`, which read from the start.
   */
  stream: Readable;
  /**
   * Settles when the producer is finished: resolves (optionally with more meta) when it succeeded,
   * rejects when it failed (a dump that exited non-zero). The artifact is committed only if it
   * resolves.
   */
  done?: Promise<Record<string, unknown> | void>;
}

/** A stage an encryption plugin adds to the archive pipeline (after compression). */
export interface ArchiveTransform {
  name: string;
  /** Appended to the file name: `.gpg`. */
  extension: string;
  create(): Duplex;
  /**
   * The same stage as an external program, if it is one (gpg): the pipeline then feeds it
   * through a pipe and writes and hashes its output in place, instead of through `create`'s
   * stream. Used when it is the only transform.
   */
  program?(): ProgramSpec;
  /**
   * The same stage as a synchronous encoder, if it can run in-process: the pipeline then applies
   * it to each buffer right before hashing and writing it. Preferred over `program` and `create`
   * when it is the only transform.
   */
  chunked?(): ChunkEncoder;
  /**
   * How a worker thread undoes this stage, so that the run can verify the artifact while it is
   * written (see ThreadDecoderSpec); without it, an encrypted artifact is verified after writing.
   */
  threadDecoder?(): ThreadDecoderSpec;
  /** Recorded in the manifest as the artifact's `encryption` (never a key). */
  info: EncryptionInfo;
}

export interface RunContext {
  readonly id: string;
  readonly profile: string;
  readonly host: string;
  readonly startedAt: Date;
  readonly backupRoot: string;
  readonly dryRun: boolean;
  /** The source instances this run backs up. */
  readonly sources: readonly string[];
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly report: RunReport;
}

export interface CollectContext {
  readonly run: RunContext;
  /** Called by source plugins (through defineSource) for the artifacts of one source instance. */
  addArtifact(source: string, plugin: string, spec: ArtifactSpec): void;
  /**
   * Called by defineSource when a source's collect failed: the other sources go on (a partial
   * snapshot). Throws the error back when the profile is `failFast`.
   */
  sourceFailed?(source: string, error: BackupError): void;
}

export interface ArchiveContext {
  readonly run: RunContext;
  readonly source: string;
  readonly plugin: string;
  readonly spec: ArtifactSpec;
  /** Encryption plugins add their stage here. */
  addTransform(transform: ArchiveTransform): void;
}

/** Reads an artifact back: checks its size and sha256, and decodes it (decrypt, decompress). */
export interface ArtifactAccess {
  readonly repository: SnapshotRepository;
  readonly manifest: Manifest;
  readonly artifact: ArtifactRecord;
  readonly logger: Logger;
  /**
   * The decoded bytes (a tar for trees). The stream errors with E_INTEGRITY if the stored bytes
   * do not match the manifest, so a consumer must treat its data as good only once it has ended.
   */
  openDecoded(): Promise<Readable>;
  /** The decoded bytes in a private temporary file (checked), for tools that need a path. */
  materialize(): Promise<string>;
  /** A private scratch folder, removed when the operation ends. */
  tempDir(): Promise<string>;
}

export interface DecodeContext {
  readonly manifest: Manifest;
  readonly artifact: ArtifactRecord;
  /**
   * Encryption plugins add the stage that undoes theirs, first in line after the checksum.
   * `create` makes it as a stream stage; faster forms, used when it is the only stage:
   * - `chunk`: a synchronous decoder run in the same loop as the read and the decompression;
   * - `program`: an external program reading stdin and writing stdout; when the artifact is a
   *   local file it then reads the file itself, and its output is read in place.
   */
  addDecoder(name: string, create: () => Duplex, alternatives?: DecoderAlternatives): void;
  /**
   * This host cannot decode the artifact, by design (it is encrypted to keys it does not hold):
   * verify then checks its size and sha256 only, and a restore fails with `reason`.
   */
  cannotDecode(reason: string): void;
}

export interface DecoderAlternatives {
  chunk?: () => ChunkDecoder;
  program?: () => ProgramSpec;
}

export interface VerifyContext extends ArtifactAccess {
  /** Deep checks beyond size, sha256 and decoding, named in reports: `integrity_check`. */
  addCheck(name: string, ok: boolean, detail?: string): void;
}

export interface CommitContext {
  readonly run: RunContext;
  /** The manifest about to be written; plugins may add top-level fields (e.g. an authenticator). */
  readonly manifest: Manifest;
}

/** Why a manifest is read back. */
export type ManifestPurpose = 'verify' | 'restore' | 'restore-test';

export interface ManifestCheckContext {
  readonly repository: SnapshotRepository;
  /** As read from the repository, with the fields plugins added at commit (e.g. an authenticator). */
  readonly manifest: Manifest;
  readonly purpose: ManifestPurpose;
  readonly logger: Logger;
}

export interface ReplicateContext {
  readonly run: RunContext | undefined;
  readonly source: SnapshotRepository;
  readonly manifest: Manifest;
}

export interface PruneContext {
  readonly run: RunContext | undefined;
  readonly dryRun: boolean;
  readonly logger: Logger;
}

export interface RestoreIntoContext extends ArtifactAccess {
  /** The connection URL or target named by `--into`. */
  readonly into: string;
  readonly database: string | undefined;
  readonly clean: boolean;
}

export interface RestoreTestContext extends ArtifactAccess {
  /** Where the artifact was restored in the sandbox: the tree's folder, or the file. */
  readonly restoredPath: string;
  /** Results of the checks; a failed check fails the restore test. */
  addCheck(name: string, ok: boolean, detail?: string): void;
}

/** How one tap of a settled hook ended. */
export interface TapOutcome {
  error?: BackupError;
  durationMs: number;
}

/**
 * The context of a hook whose taps all run even when one fails (`notify`): each tap's outcome is
 * handed to `settle` instead of being thrown, and `admits` can leave a tap out.
 */
export interface SettledContext {
  /** Whether the tap of this name runs now (a notification channel's `on` and `throttle`). */
  admits(tap: string): boolean;
  settle(tap: string, outcome: TapOutcome): void;
}

export interface NotifyContext extends SettledContext {
  readonly notification: Notification;
  /** The run's report (redacted) when the notification is about a run. */
  readonly report: RunReport | undefined;
  readonly logger: Logger;
  /** How many tries a channel took (defineNotifier's retries), for the report. */
  recordAttempts(channel: string, attempts: number): void;
}

export interface RegisteredDestination {
  /** The instance name: the key under `destinations:`. */
  name: string;
  plugin: string;
  destination: Destination;
  traits: DestinationTraits;
  /** Overrides the profiles' retention at this destination. */
  retention: RetentionPolicy | undefined;
}

export interface DestinationRegistry {
  add(entry: RegisteredDestination): void;
}

/** The engine's hooks, in lifecycle order. Only the engine calls them. */
export function createHooks() {
  return Object.freeze({
    /** Registration: destination plugins add their Destination. */
    destinations: new SyncHook<[DestinationRegistry]>(['registry']),
    beforeRun: new AsyncSeriesHook<[RunContext]>(['run']),
    collect: new AsyncSeriesHook<[CollectContext]>(['collect']),
    /** Per artifact, before its bytes flow. */
    archive: new AsyncSeriesHook<[ArchiveContext]>(['archive']),
    /** Per artifact being read back: undo encryption. */
    decode: new AsyncSeriesHook<[DecodeContext]>(['decode']),
    /** Per artifact, after its size, sha256 and decoding were checked. */
    verify: new AsyncSeriesHook<[VerifyContext]>(['verify']),
    /** Before the manifest is written. */
    commit: new AsyncSeriesHook<[CommitContext]>(['commit']),
    /**
     * Whenever a manifest is read to verify, restore or restore-test from it: plugins that
     * authenticated it at commit check it here, and throw (E_INTEGRITY) to reject it.
     */
    checkManifest: new AsyncSeriesHook<[ManifestCheckContext]>(['manifest']),
    /** After the local commit: copy the snapshot elsewhere. */
    replicate: new AsyncSeriesHook<[ReplicateContext]>(['replicate']),
    prune: new AsyncSeriesHook<[PruneContext]>(['prune']),
    /**
     * Per artifact, `restore --into`: the source plugin that can restore it returns true, or false
     * when this restore leaves the artifact out (another database of the source was picked).
     */
    restore: new AsyncSeriesBailHook<[RestoreIntoContext], boolean | undefined>(['restore']),
    /** Per artifact restored into a sandbox. */
    restoreTest: new AsyncSeriesHook<[RestoreTestContext]>(['restoreTest']),
    /** Every channel at once; a settled hook, so one channel's failure never stops another. */
    notify: new AsyncParallelHook<[NotifyContext]>(['notify']),
    runFailed: new AsyncSeriesHook<[RunContext, BackupError]>(['run', 'error']),
    done: new AsyncSeriesHook<[RunReport]>(['report']),
    /** The engine is closing (after any command): plugins release what they hold (temporary keyrings, connections). */
    close: new AsyncSeriesHook<[]>([]),
  });
}

export type Hooks = ReturnType<typeof createHooks>;
export type HookName = keyof Hooks;

type TapOnly<H> = H extends SyncHook<infer A, infer R>
  ? Pick<SyncHook<A, R>, 'tap'>
  : H extends AsyncSeriesBailHook<infer A, infer R>
    ? Pick<AsyncSeriesBailHook<A, R>, 'tap' | 'tapPromise'>
    : H extends AsyncSeriesHook<infer A, infer R>
      ? Pick<AsyncSeriesHook<A, R>, 'tap' | 'tapPromise'>
      : H extends AsyncParallelHook<infer A, infer R>
        ? Pick<AsyncParallelHook<A, R>, 'tap' | 'tapPromise'>
        : never;

/** What plugins receive: hooks they can tap but not call. */
export type TapHooks = { readonly [K in HookName]: TapOnly<Hooks[K]> };

/** A view of the hooks that can only be tapped, each tap tagged with the plugin's name. */
export function tapOnly(hooks: Hooks): TapHooks {
  const view: Record<string, unknown> = {};
  for (const [name, hook] of Object.entries(hooks)) {
    const h = hook as unknown as { tap: Function; tapPromise?: Function };
    view[name] = Object.freeze({
      tap: h.tap.bind(hook),
      ...(h.tapPromise ? { tapPromise: h.tapPromise.bind(hook) } : {}),
    });
  }
  return Object.freeze(view) as unknown as TapHooks;
}

const stageErrorCodes: Partial<Record<HookName, ErrorCode>> = {
  collect: 'E_SOURCE',
  archive: 'E_ARCHIVE',
  decode: 'E_ARCHIVE',
  checkManifest: 'E_INTEGRITY',
  verify: 'E_VERIFY',
  replicate: 'E_DESTINATION',
  restore: 'E_RESTORE',
  restoreTest: 'E_RESTORE_TEST',
  notify: 'E_NOTIFY',
};

/** Hooks whose every tap runs whatever the others do (semantic-release's "settle all" steps). */
const settledHooks: ReadonlySet<HookName> = new Set(['notify']);

/**
 * Wraps every tap so that whatever it throws becomes a BackupError naming the plugin (the tap's
 * name) and the stage (the hook's name). On a settled hook a failure goes to the context's
 * `settle` instead, and the other taps still run.
 */
export function wrapTapErrors(hooks: Hooks): void {
  for (const [name, hook] of Object.entries(hooks) as [HookName, Hooks[HookName]][]) {
    const code = stageErrorCodes[name] ?? 'E_PLUGIN';
    const settled = settledHooks.has(name);
    (hook as unknown as { intercept(i: object): void }).intercept({
      register(tap: { name: string; type: string; fn: (...args: unknown[]) => unknown }) {
        const fn = tap.fn;
        if (settled) {
          tap.fn = async (...args: unknown[]) => {
            const ctx = args[0] as SettledContext;
            if (!ctx.admits(tap.name)) return undefined;
            const t0 = Date.now();
            try {
              await fn(...args);
              ctx.settle(tap.name, { durationMs: Date.now() - t0 });
            } catch (err) {
              ctx.settle(tap.name, { error: toPluginError(err, tap.name, name, code), durationMs: Date.now() - t0 });
            }
            return undefined;
          };
          tap.type = 'promise';
        } else if (tap.type === 'promise') {
          tap.fn = async (...args: unknown[]) => {
            try {
              return await fn(...args);
            } catch (err) {
              throw toPluginError(err, tap.name, name, code);
            }
          };
        } else if (tap.type === 'sync') {
          tap.fn = (...args: unknown[]) => {
            try {
              return fn(...args);
            } catch (err) {
              throw toPluginError(err, tap.name, name, code);
            }
          };
        }
        return tap;
      },
    });
  }
}

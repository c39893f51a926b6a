/**
 * What every repository format implements: the seam between the commands (run, verify, restore,
 * restore-test, replicate, prune, forget, list, status) and how snapshots are stored. Today's tar
 * layout (`snapshots/<id>/manifest.json` beside one object per artifact) is the first format:
 * repository.ts's `Repository`, reader.ts's `ArtifactReader`, staged-snapshot.ts's `StagedSnapshot`
 * and replicate.ts's `copySnapshot`. restic's repository format (packages/core/src/restic/) is
 * meant to be the second, behind the same interfaces (docs/design.md, Part B, "The repository interface").
 *
 * A command never names a format: it gets its repositories from `openRepository` (below), the one
 * place that maps the rc file's `repository.format` to an implementation.
 *
 * The commands speak in the tool's snapshot ids (`20261126T020000Z-daily-3f9a`) and manifests
 * (profile, host, times, one record per artifact with its source, type, rawBytes and meta);
 * a format keeps whatever else it needs to find the artifacts' bytes.
 */
import type { Readable } from 'node:stream';
import type { CheckResult } from './checks.js';
import type { Destination, ObjectInfo } from './destination.js';
import { BackupError } from './errors.js';
import type { ArchiveTransform, ArtifactSpec, Hooks } from './hooks.js';
import type { Logger } from './log.js';
import type { ArtifactRecord, Compression, EncryptionInfo, Manifest } from './manifest.js';
import type { TreeStats } from './pipeline/tar-extract.js';
import type { CopyResult, RetryOptions } from './replicate.js';
import { Repository } from './repository.js';
import { ResticSnapshots } from './restic-format/snapshots.js';
import type { Scratch } from './scratch.js';

export type RepositoryFormat = 'tar' | 'restic';

/** The format of a repository whose rc file names none (Part A: `tar` until restic's has proved itself). */
export const DEFAULT_FORMAT: RepositoryFormat = 'tar';

/** Opens one format's repository over an object store; `name` is what messages call it. */
export type RepositoryOpener = (destination: Destination, name: string, options: FormatOptions) => SnapshotRepository;

/** What a format needs besides the store: restic's password, the host its snapshots name. */
export interface FormatOptions {
  password?: string | undefined;
  host?: string | undefined;
}

/** The formats the engine can open: restic's is restic-format/snapshots.ts over restic/. */
const OPENERS: Readonly<Record<RepositoryFormat, RepositoryOpener | undefined>> = {
  tar: (destination, name) => new Repository(destination, name),
  restic: (destination, name, options) => new ResticSnapshots(destination, name, options),
};

/** The repository of `format` over `destination`: backupRoot's, a destination's, for every command. */
export function openRepository(destination: Destination, name: string, format: RepositoryFormat = DEFAULT_FORMAT, options: FormatOptions = {}): SnapshotRepository {
  const open = OPENERS[format];
  if (!open) {
    const available = Object.entries(OPENERS).flatMap(([f, o]) => (o ? [f] : []));
    throw new BackupError('E_CONFIG', `repository.format: the ${format} format is not available in this version (available: ${available.join(', ')})`);
  }
  return open(destination, name, options);
}

export interface SnapshotListing {
  /** Snapshots that exist (their manifest does), oldest first. */
  ids: string[];
  /**
   * What is stored per snapshot id, committed or not. An id with objects but without a manifest
   * is an incomplete snapshot (an upload or deletion cut short) or someone else's folder; only a
   * format that writes a snapshot object by object (tar, at a destination) ever has one.
   */
  objects: Map<string, ObjectInfo[]>;
  /** The ids among `objects` that carry this tool's marker of an incomplete snapshot (see SnapshotMarker). */
  marked: Set<string>;
}

/** A manifest that could not be read: listed so that `verify` and `status` can show it. */
export interface BrokenSnapshot {
  id: string;
  error: BackupError;
}

/**
 * The marker of an incomplete snapshot: written before a destination gets a snapshot's first
 * object (removed after its manifest), and before a snapshot is deleted (removed last).
 */
export interface SnapshotMarker {
  tool: string;
  snapshot: string;
  /** What was under way: an upload to a destination, or a deletion. */
  state: 'uploading' | 'deleting';
  /** When it started (the engine's clock). */
  since: string;
}

/** One repository: backupRoot's, or a destination's. */
export interface SnapshotRepository {
  readonly format: RepositoryFormat;
  /** The name used in messages, history records and `--json`: `backupRoot` or `destinations.<name>`. */
  readonly name: string;
  /** The name and where it is: `destinations.offsite (s3://bucket/host/)`. */
  readonly description: string;
  /** The object store underneath (storage usage, closing). */
  readonly destination: Destination;

  // Snapshots: list and read.
  listing(): Promise<SnapshotListing>;
  snapshotIds(): Promise<string[]>;
  /** `latest`, a full id or a unique prefix of one. */
  resolveId(idOrLatest: string): Promise<string>;
  /** The manifest as stored (E_NOT_FOUND, or E_INTEGRITY when it is not this snapshot's valid manifest). */
  readManifest(id: string): Promise<Manifest>;
  /** Every readable manifest, oldest first, and the snapshots whose manifest is damaged. */
  manifests(): Promise<{ manifests: Manifest[]; broken: BrokenSnapshot[] }>;

  // Artifacts: read.
  /** Reads one artifact of a committed snapshot back: verify, restore, restore-test, plugins' contexts. */
  reader(manifest: Manifest, artifact: ArtifactRecord, use: ReaderUse): Promise<ReadableArtifact>;

  // Snapshots: write and commit.
  /**
   * Starts a snapshot here; a run writes its artifacts into the writer, verifies them through
   * its readers, and commits. Only backupRoot's repository is written so: destinations `receive`.
   */
  startSnapshot(id: string, options: SnapshotWriteOptions): Promise<SnapshotWriter>;
  /**
   * Copies a snapshot committed at `from` (a repository of the same format) here, so that it
   * exists here only once it is whole. `held` is this repository's listing, taken before: what an
   * interrupted copy already sent is not sent again.
   */
  receive(from: SnapshotRepository, manifest: Manifest, held: SnapshotListing, options: ReceiveOptions): Promise<CopyResult>;

  // Snapshots: delete.
  /** Deletes a snapshot so that it stops existing first, then its objects; `objects` from a listing saves a list call. */
  deleteSnapshot(id: string, objects?: ObjectInfo[], at?: Date): Promise<void>;
  /** The marker of an incomplete snapshot, or undefined (none, or not one this tool wrote). */
  readMarker(id: string): Promise<SnapshotMarker | undefined>;
  /** Deletes an incomplete snapshot's objects, its marker last. */
  deleteIncomplete(id: string, objects: ObjectInfo[]): Promise<void>;
  removeMarker(id: string): Promise<void>;
  /** After snapshots were deleted: the format's garbage collection (restic's prune); none for tar. */
  collectGarbage?(logger: Logger): Promise<unknown>;
}

/** What reading needs from the engine: the decode hook, a logger, and where temporary files go. */
export interface ReaderUse {
  hooks: Hooks;
  logger: Logger;
  scratch: Scratch;
}

/**
 * One artifact read back. Decoded, a tree artifact is a tar stream and a file artifact its bytes;
 * every read checks what it reads against the manifest, so data counts as good only once a read
 * has ended without error.
 */
export interface ReadableArtifact {
  readonly repository: SnapshotRepository;
  readonly manifest: Manifest;
  readonly artifact: ArtifactRecord;
  readonly logger: Logger;
  /** `<repository>: <id>/<file>`, for messages. */
  readonly label: string;
  /** Why this host cannot decode the artifact (it is encrypted to keys it does not hold), else undefined. */
  undecodable(): Promise<string | undefined>;
  /** Checks the stored bytes without decoding them (tar: size and sha256); throws when they differ. */
  checkStored(): Promise<CheckResult[]>;
  /**
   * The format's own checks of the artifact: its stored bytes are whole and decode to what the
   * manifest records (tar: size, sha256, decoding, every tar header). Throws on the first failure.
   */
  check(): Promise<CheckResult[]>;
  openDecoded(options?: { decompress?: boolean }): Promise<Readable>;
  /** Hands each decoded piece (a view valid only during the call) to `onData`; returns the decoded size. */
  readDecoded(onData: (data: Buffer) => void): Promise<number>;
  /** The decoded bytes in a private temporary file. */
  materialize(): Promise<string>;
  /** A private scratch folder, removed when the command ends. */
  tempDir(): Promise<string>;
  /** A format whose trees are not tar streams restores a tree artifact itself, to `dir/<source>`. */
  restoreTree?(dir: string): Promise<{ path: string; stats: TreeStats }>;
  /** The error to report for a failed read: a decoder's complaint is explained by stored bytes that changed, when they did. */
  explain(err: unknown): Promise<BackupError>;
}

export interface SnapshotWriteOptions {
  compression: Compression;
  compressionLevel: number | undefined;
}

/** A snapshot being written: artifacts, then `commit`; `close` always, which drops what was not committed. */
export interface SnapshotWriter {
  readonly id: string;
  /** A private folder for a source to work in while its artifact `name` is archived. */
  workDir(name: string): Promise<string>;
  /** Stores one artifact, reading its input to the end. */
  writeArtifact(input: ArtifactInput): Promise<StoredArtifact>;
  /** Reads an artifact written so far back, for the run's verification before the commit. */
  reader(manifest: Manifest, artifact: ArtifactRecord, use: ReaderUse): Promise<ReadableArtifact>;
  /**
   * Makes the snapshot exist with this manifest, at once and whole, holding exactly the manifest's
   * artifacts: what was written for others (a failed source's, in a partial snapshot) is dropped.
   */
  commit(manifest: Manifest): Promise<void>;
  close(): Promise<void>;
}

export interface ArtifactInput {
  source: string;
  spec: ArtifactSpec;
  /** A file artifact's bytes (the source's output); a tree's are read from `spec.paths` by the format. */
  stream?: Readable;
  /** Stages after compression (encryption), from the archive hook; in the order they apply. */
  transforms: readonly ArchiveTransform[];
  logger: Logger;
  signal: AbortSignal;
  onProgress(rawBytes: number): void;
  /** Something in a tree that was left out or changed while it was read. */
  onWarning(message: string, path: string): void;
}

/** What a format stored for one artifact: the manifest record's storage fields. */
export interface StoredArtifact {
  /** The artifact's name in the snapshot: `configs.tar.zst`. */
  file: string;
  bytes: number;
  sha256: string;
  rawBytes: number;
  compression: Compression;
  encryption: EncryptionInfo | null;
  /** A tree's files, folders, symlinks and bytes, for `meta.entries`. */
  entries?: TreeStats;
}

export interface ReceiveOptions {
  retry?: RetryOptions;
  logger?: Logger;
  at?: Date;
}

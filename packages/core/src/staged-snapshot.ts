import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ownFolder } from './backup-root.js';
import { crashPoint } from './crash-point.js';
import { LocalDestination } from './destination.js';
import { ensureDir, fsyncDir, writeFileAtomic } from './fs.js';
import type { ArchiveTransform } from './hooks.js';
import { MANIFEST_FILE, serializeManifest, type ArtifactRecord, type Compression, type Manifest } from './manifest.js';
import { writeArtifact, type WriteArtifactOptions } from './pipeline/archive.js';
import { compressionExtension, isStreamOnly } from './pipeline/compression.js';
import { looksIncompressible } from './pipeline/encoder.js';
import { FollowingVerifier, type StoredScanOutcome } from './pipeline/follow-verify.js';
import type { TreeStats } from './pipeline/tar-extract.js';
import { tarPieces, type TarPiece } from './pipeline/tar-pack.js';
import { ArtifactReader } from './reader.js';
import type { ArtifactInput, ReaderUse, SnapshotWriteOptions, SnapshotWriter, StoredArtifact } from './repository-format.js';
import { Repository } from './repository.js';
import { StagingArea } from './staging.js';

/**
 * Artifacts are verified while they are written once this much is written; smaller ones after
 * (starting the verifying thread costs about 0.1 s).
 */
const FOLLOW_FROM = 16 * 1024 * 1024;

/**
 * A snapshot of the tar format being written at backupRoot: its artifacts in
 * `staging/snapshots/<id>/` (sources work in `staging/work-<id>/`), then the manifest, then one
 * rename into `snapshots/`, atomic on one file system.
 */
export class StagedSnapshot implements SnapshotWriter {
  readonly id: string;
  readonly #backupRoot: string;
  readonly #options: SnapshotWriteOptions;
  readonly #area: StagingArea;
  readonly #dir: string;
  readonly #work: string;
  /** The staged artifacts as a repository, for the readers of the verification before the commit. */
  readonly #staging: Repository;
  /** Artifacts verified while they were written: what their reading found. */
  readonly #followed = new Map<string, Promise<StoredScanOutcome>>();
  readonly #followers: FollowingVerifier[] = [];
  #committed = false;

  private constructor(backupRoot: string, id: string, options: SnapshotWriteOptions) {
    this.id = id;
    this.#backupRoot = backupRoot;
    this.#options = options;
    this.#area = new StagingArea(backupRoot);
    this.#dir = path.join(this.#area.dir, 'snapshots', id);
    this.#work = path.join(this.#area.dir, `work-${id}`);
    this.#staging = new Repository(new LocalDestination(this.#area.dir), 'staging');
  }

  static async start(backupRoot: string, id: string, options: SnapshotWriteOptions): Promise<StagedSnapshot> {
    const staged = new StagedSnapshot(backupRoot, id, options);
    try {
      await staged.#area.create(`snapshots/${id}`, 'run');
      await staged.#area.create(`work-${id}`, 'run');
    } catch (err) {
      await staged.close();
      throw err;
    }
    return staged;
  }

  async workDir(name: string): Promise<string> {
    const dir = path.join(this.#work, name);
    await ensureDir(dir);
    return dir;
  }

  async writeArtifact(input: ArtifactInput): Promise<StoredArtifact> {
    const { spec, transforms, logger } = input;
    const { compression } = this.#options;
    const ext = spec.type === 'tree' ? 'tar' : spec.ext;
    const file = `${spec.name}.${ext}${compressionExtension[compression]}${transforms.map((t) => t.extension).join('')}`;
    const target = path.join(this.#dir, file);
    const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    const pieces: Readable | AsyncIterable<TarPiece> =
      spec.type === 'tree'
        ? tarPieces(spec.paths, {
            ...(spec.filter ? { filter: spec.filter } : {}),
            // Only zstd's pooled writes store incompressible data without compressing it.
            ...(compression === 'zstd' && !isStreamOnly('zstd') ? { isIncompressible: looksIncompressible } : {}),
            ...(spec.transform ? { transform: spec.transform } : {}),
            onWarning: (message, entry) => input.onWarning(message, entry.absPath),
            stats,
          })
        : input.stream!;
    logger.debug(`archiving ${file}`);
    const follow = this.#follow(target, file, spec.type === 'tree', transforms, logger);
    let written;
    try {
      written = await writeArtifact(pieces, target, {
        compression,
        compressionLevel: this.#options.compressionLevel,
        ...afterCompression(transforms, compression),
        onProgress: input.onProgress,
        ...(follow ? { onStored: follow.onStored } : {}),
        signal: input.signal,
      });
    } catch (err) {
      // The other sources may still be committed (a partial snapshot): none of this one's bytes may be.
      await follow?.abort();
      await fsp.rm(target, { force: true });
      throw err;
    }
    follow?.finish();
    return {
      file,
      bytes: written.bytes,
      sha256: written.sha256,
      rawBytes: written.rawBytes,
      compression,
      encryption: transforms.length ? transforms[transforms.length - 1]!.info : null,
      ...(spec.type === 'tree' ? { entries: stats } : {}),
    };
  }

  /**
   * A large artifact is verified while it is written, by a thread reading behind the writer:
   * when the pooled writes store it and the stages after compression (encryption) say how a
   * thread undoes them.
   */
  #follow(target: string, file: string, tree: boolean, transforms: readonly ArchiveTransform[], logger: ReaderUse['logger']) {
    const { compression } = this.#options;
    // Encrypted: when the encryption stage says how a thread can undo it.
    const decoder = transforms.length === 1 ? transforms[0]!.threadDecoder?.() : undefined;
    if (!((transforms.length === 0 || decoder) && !isStreamOnly(compression) && FollowingVerifier.available)) return undefined;
    let follower: FollowingVerifier | undefined;
    return {
      onStored: (bytes: number) => {
        if (!follower && bytes >= FOLLOW_FROM) {
          follower = new FollowingVerifier(target, { compression, label: `staging: ${this.id}/${file}`, tree, decoder });
          this.#followers.push(follower);
          logger.debug(`verifying ${file} while it is written`);
        }
        follower?.advance(bytes);
      },
      abort: async () => {
        await follower?.abort();
      },
      finish: () => {
        if (!follower) return;
        const outcome = follower.finish();
        outcome.catch(() => {});
        this.#followed.set(file, outcome);
      },
    };
  }

  async reader(manifest: Manifest, artifact: ArtifactRecord, use: ReaderUse): Promise<ArtifactReader> {
    return new ArtifactReader({ ...use, repository: this.#staging, manifest, artifact, followed: this.#followed.get(artifact.file) });
  }

  async commit(manifest: Manifest): Promise<void> {
    // Exactly the manifest's artifacts: what a failed source wrote is not part of the snapshot.
    const named = new Set(manifest.artifacts.map((a) => a.file));
    for (const entry of await fsp.readdir(this.#dir)) {
      if (!named.has(entry)) await fsp.rm(path.join(this.#dir, entry), { recursive: true, force: true });
    }
    await writeFileAtomic(path.join(this.#dir, MANIFEST_FILE), serializeManifest(manifest));
    crashPoint('after-manifest');
    const finalDir = path.join(await ownFolder(this.#backupRoot, 'snapshots'), this.id);
    await fsp.rename(this.#dir, finalDir);
    await fsyncDir(path.dirname(finalDir));
    crashPoint('after-rename');
    this.#committed = true;
    await this.#area.forget(this.#dir);
  }

  async close(): Promise<void> {
    await Promise.all(this.#followers.map((f) => f.abort()));
    if (!this.#committed) await this.#area.discard(this.#dir).catch(() => {});
    await this.#area.discard(this.#work).catch(() => {});
  }
}

/**
 * How the stages after compression run: one in-process encoder or one program in place of the
 * pooled writes when they allow it, else stream stages (always with gzip, itself a stream stage,
 * and with zstd without zstd-napi).
 */
function afterCompression(transforms: readonly ArchiveTransform[], compression: Compression): Pick<WriteArtifactOptions, 'chunked' | 'program' | 'transforms'> {
  const only = transforms.length === 1 && !isStreamOnly(compression) ? transforms[0]! : undefined;
  if (only?.chunked) return { chunked: only.chunked() };
  if (only?.program) return { program: only.program() };
  return { transforms: transforms.map((t) => t.create()) };
}

import { createHash } from 'node:crypto';
import { promises as fsp, type BigIntStats, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { BackupError } from '../errors.js';
import type { TreeEntry } from '../pipeline/tree-entries.js';
import { serializeManifest, type ArtifactRecord, type Manifest } from '../manifest.js';
import type { ArtifactInput, ReaderUse, SnapshotRepository, SnapshotWriter, StoredArtifact } from '../repository-format.js';
import { Archiver } from '../restic/archiver.js';
import { FastCdcChunker } from '../restic/fastcdc.js';
import type { RepositoryLock } from '../restic/locks.js';
import type { ResticRepository } from '../restic/repository.js';
import { newSnapshot } from '../restic/snapshot.js';
import { findPath, walkTree } from '../restic/walk.js';
import type { TreeStats } from '../pipeline/tar-extract.js';
import { CORE_VERSION, TOOL_NAME } from '../version.js';
import { ResticArtifact } from './artifact.js';

/** The top-level folder of a snapshot that holds the tool's manifest. */
export const TOOL_FOLDER = '.sutazai';
export const MANIFEST_NAME = 'manifest.json';
/** Tags that say a restic snapshot is this tool's: `restic snapshots` shows the profile and run id. */
export const TOOL_TAG = TOOL_NAME;
export const profileTag = (profile: string) => `profile:${profile}`;
export const idTag = (id: string) => `id:${id}`;

export interface WriterParts {
  owner: SnapshotRepository;
  repo: ResticRepository;
  lock: RepositoryLock;
  id: string;
  host: string;
  /** The previous snapshot of the same profile: unchanged files are not read again. */
  parent?: { id: string; tree: string } | undefined;
}

/** A stored tree's files, folders, symlinks and bytes (the manifest's `meta.entries`, as tar records them). */
async function treeStats(repo: ResticRepository, tree: string): Promise<TreeStats> {
  // The source's own folder counts, as restoring it creates it.
  const stats: TreeStats = { files: 0, directories: 1, symlinks: 0, bytes: 0 };
  for await (const { node } of walkTree(repo, tree)) {
    if (node.type === 'file') {
      stats.files++;
      stats.bytes += node.size ?? 0;
    } else if (node.type === 'dir') stats.directories++;
    else if (node.type === 'symlink') stats.symlinks++;
  }
  return stats;
}

/**
 * One run's restic snapshot: every artifact into one Archiver (a tree source's folder, a stream
 * as one file node), then the manifest as `/.sutazai/manifest.json` and one snapshot file.
 */
export class ResticSnapshotWriter implements SnapshotWriter {
  readonly id: string;
  readonly #parts: WriterParts;
  readonly #archiver: Archiver;
  readonly #workDirs: string[] = [];
  readonly #filters: { roots: string[]; filter: (entry: TreeEntry) => boolean }[] = [];
  #committed = false;

  constructor(parts: WriterParts) {
    this.id = parts.id;
    this.#parts = parts;
    const { repo } = parts;
    this.#archiver = new Archiver({
      store: repo,
      chunker: () => new FastCdcChunker(repo.config.chunkerPolynomial),
      parentTree: parts.parent?.tree,
      exclude: (fsPath, st) => this.#excluded(fsPath.toString('utf8'), st),
    });
  }

  /** The tree filters of the sources whose paths hold `absPath`: left out only when every one of them leaves it out. */
  #excluded(absPath: string, st: BigIntStats): boolean {
    const covering = this.#filters.filter((f) => f.roots.some((r) => absPath === r || absPath.startsWith(`${r}/`)));
    if (!covering.length) return false;
    const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'file';
    // TreeEntry's stat is a Stats; the files source's filter reads only the path and the type.
    const entry: TreeEntry = { absPath, archivePath: absPath.slice(1), type, stat: st as unknown as Stats };
    return covering.every((f) => !f.filter(entry));
  }

  async workDir(name: string): Promise<string> {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `sutazai-restic-${name}-`));
    this.#workDirs.push(dir);
    return dir;
  }

  async writeArtifact(input: ArtifactInput): Promise<StoredArtifact> {
    const { spec, source } = input;
    if (input.transforms.length) throw new BackupError('E_CONFIG', `sources.${source}: repository.format restic encrypts itself; an archive transform (encryption) cannot apply`);
    const before = this.#archiver.stats.bytesAdded;
    if (spec.type === 'tree') {
      if (spec.transform) throw new BackupError('E_CONFIG', `sources.${source}: redact (a content transform) is not supported with repository.format restic yet`);
      if (spec.filter) this.#filters.push({ roots: spec.paths.map((p) => path.resolve('/', p)), filter: spec.filter });
      await this.#archiver.addTree(source, spec.paths);
      const node = await this.#sourceNode(`/${source}`);
      const entries = await treeStats(this.#parts.repo, node.subtree!);
      // bytes: what the repository grew by meanwhile (sources archived side by side share the count).
      return { file: spec.name, bytes: this.#archiver.stats.bytesAdded - before, sha256: node.subtree!, rawBytes: entries.bytes, compression: 'zstd', encryption: null, entries };
    }
    if (!input.stream) throw new BackupError('E_INTERNAL', `sources.${source}: ${spec.name} has no stream`);
    const hash = createHash('sha256');
    let rawBytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        rawBytes += chunk.length;
        input.onProgress(rawBytes);
        done(null, chunk);
      },
    });
    input.stream.on('error', (err) => counted.destroy(err));
    await this.#archiver.addStream(source, spec.filename, input.stream.pipe(counted));
    return { file: `${spec.name}.${spec.ext}`, bytes: this.#archiver.stats.bytesAdded - before, sha256: hash.digest('hex'), rawBytes, compression: 'zstd', encryption: null };
  }

  /** The root tree of what is archived so far (each call saves the few tree blobs that changed). */
  async #sourceNode(at: string) {
    const root = await this.#archiver.finish();
    return (await findPath(this.#parts.repo, root, at)).at(-1)!;
  }

  async reader(manifest: Manifest, artifact: ArtifactRecord, use: ReaderUse): Promise<ResticArtifact> {
    return new ResticArtifact(this.#parts.owner, this.#parts.repo, await this.#archiver.finish(), manifest, artifact, use);
  }

  async commit(manifest: Manifest): Promise<void> {
    const { repo, lock, parent } = this.#parts;
    await this.#archiver.addStream(TOOL_FOLDER, MANIFEST_NAME, Readable.from([Buffer.from(serializeManifest(manifest))]));
    // Exactly the manifest's sources: a failed source's entries (in a partial snapshot) are left out.
    const sources = [...new Set(manifest.artifacts.map((a) => a.source))];
    const tree = await this.#archiver.finish(new Set([...sources, TOOL_FOLDER]));
    await repo.flush();
    lock.assertHeld();
    const snapshot = newSnapshot({
      tree,
      paths: [...sources, TOOL_FOLDER].map((s) => `/${s}`),
      timeNs: this.#archiver.timeNs,
      ...(parent ? { parent: parent.id } : {}),
      tags: [TOOL_TAG, profileTag(manifest.profile), idTag(manifest.id)],
      hostname: this.#parts.host,
      programVersion: `${TOOL_NAME} ${CORE_VERSION}`,
    });
    await repo.saveJson('snapshots', snapshot);
    this.#committed = true;
    // The run's later stages (prune) take the repository's exclusive lock.
    await lock.release();
  }

  async close(): Promise<void> {
    try {
      // Blobs of a run that did not commit stay in indexed packs: the next run reuses them, prune removes them.
      if (!this.#committed) await this.#parts.repo.flush().catch(() => {});
    } finally {
      if (!this.#committed) await this.#parts.lock.release().catch(() => {});
      for (const d of this.#workDirs) await fsp.rm(d, { recursive: true, force: true });
    }
  }
}

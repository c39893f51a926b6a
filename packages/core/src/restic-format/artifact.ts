import path from 'node:path';
import type { Readable } from 'node:stream';
import type { CheckResult } from '../checks.js';
import { BackupError, isBackupError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ArtifactRecord, Manifest } from '../manifest.js';
import type { ReadableArtifact, ReaderUse, SnapshotRepository } from '../repository-format.js';
import type { ResticNode } from '../restic/node.js';
import type { ResticRepository } from '../restic/repository.js';
import { restoreSnapshot } from '../restic/restorer.js';
import { fileStream, findPath, walkTree } from '../restic/walk.js';
import type { TreeStats } from '../pipeline/tar-extract.js';

/** Where an artifact lives in the snapshot tree: a tree source is `/<source>`, a file `/<source>/<filename>`. */
export function artifactPath(artifact: Pick<ArtifactRecord, 'source' | 'type' | 'filename'>): string {
  return artifact.type === 'tree' ? `/${artifact.source}` : `/${artifact.source}/${artifact.filename}`;
}

/**
 * One artifact of a restic snapshot read back. `check` reads and authenticates every data blob
 * under it (restic's `check --read-data` for this part of the snapshot); a file artifact decodes
 * to its bytes. A tree is restored by the format's own restorer (restore.ts), not as a tar.
 */
export class ResticArtifact implements ReadableArtifact {
  readonly repository: SnapshotRepository;
  readonly manifest: Manifest;
  readonly artifact: ArtifactRecord;
  readonly logger: Logger;
  readonly label: string;
  readonly #repo: ResticRepository;
  readonly #rootTree: string;
  readonly #use: ReaderUse;

  constructor(owner: SnapshotRepository, repo: ResticRepository, rootTree: string, manifest: Manifest, artifact: ArtifactRecord, use: ReaderUse) {
    this.repository = owner;
    this.#repo = repo;
    this.#rootTree = rootTree;
    this.manifest = manifest;
    this.artifact = artifact;
    this.logger = use.logger;
    this.#use = use;
    this.label = `${owner.name}: ${manifest.id}${artifactPath(artifact)}`;
  }

  async #node(): Promise<ResticNode> {
    const chain = await findPath(this.#repo, this.#rootTree, artifactPath(this.artifact));
    return chain.at(-1)!;
  }

  /** Restores a tree artifact to `dir/<source>` through restic's restorer (restore-test's sandbox). */
  async restoreTree(dir: string): Promise<{ path: string; stats: TreeStats }> {
    const stats = await restoreSnapshot({ store: this.#repo, rootTree: this.#rootTree, include: artifactPath(this.artifact), target: dir, label: this.label });
    return { path: path.join(dir, this.artifact.source), stats };
  }

  async undecodable(): Promise<string | undefined> {
    return undefined;
  }

  checkStored(): Promise<CheckResult[]> {
    return this.check();
  }

  async check(): Promise<CheckResult[]> {
    const node = await this.#node();
    let blobs = 0;
    let bytes = 0;
    const readFile = async (n: ResticNode) => {
      for (const id of n.content ?? []) {
        bytes += (await this.#repo.load('data', id)).length;
        blobs++;
      }
    };
    if (node.type === 'dir' && node.subtree) {
      for await (const entry of walkTree(this.#repo, node.subtree)) if (entry.node.type === 'file') await readFile(entry.node);
    } else {
      await readFile(node);
      if (bytes !== this.artifact.rawBytes) throw new BackupError('E_INTEGRITY', `${this.label}: ${bytes} bytes read, the manifest records ${this.artifact.rawBytes}`);
    }
    return [{ name: 'restic', ok: true, detail: `${blobs} data blob(s), ${bytes} bytes read and authenticated` }];
  }

  async openDecoded(): Promise<Readable> {
    if (this.artifact.type === 'tree') throw new BackupError('E_USAGE', `${this.label}: a restic tree is restored as a folder (restore --to), not read as one stream`);
    return fileStream(this.#repo, await this.#node(), { label: this.label });
  }

  async readDecoded(onData: (data: Buffer) => void): Promise<number> {
    let n = 0;
    for await (const chunk of await this.openDecoded()) {
      n += (chunk as Buffer).length;
      onData(chunk as Buffer);
    }
    return n;
  }

  async materialize(): Promise<string> {
    const { createWriteStream } = await import('node:fs');
    const { pipeline } = await import('node:stream/promises');
    const file = `${await this.tempDir()}/${this.artifact.filename ?? 'artifact'}`;
    await pipeline(await this.openDecoded(), createWriteStream(file, { mode: 0o600 }));
    return file;
  }

  tempDir(): Promise<string> {
    return this.#use.scratch.dir(`restic-${this.artifact.source}`);
  }

  async explain(err: unknown): Promise<BackupError> {
    if (isBackupError(err)) return err;
    return new BackupError('E_INTEGRITY', `${this.label}: ${(err as Error).message}`, { cause: err });
  }
}

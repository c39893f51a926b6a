import type { Destination, ObjectInfo } from '../destination.js';
import { BackupError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseManifest, type ArtifactRecord, type Manifest } from '../manifest.js';
import type { CopyResult } from '../replicate.js';
import type { BrokenSnapshot, ReaderUse, SnapshotListing, SnapshotRepository, SnapshotWriter } from '../repository-format.js';
import { prune, type PruneResult } from '../restic/prune.js';
import { readAll, ResticRepository } from '../restic/repository.js';
import { checkSnapshot, type ResticSnapshot } from '../restic/snapshot.js';
import { fileStream, findPath } from '../restic/walk.js';
import { parseSnapshotId } from '../snapshot-id.js';
import { ResticArtifact } from './artifact.js';
import { idTag, MANIFEST_NAME, profileTag, ResticSnapshotWriter, TOOL_FOLDER, TOOL_TAG } from './writer.js';

export interface ResticOptions {
  password?: string | undefined;
  host?: string | undefined;
}

/** A snapshot of this tool in the repository: its id, restic's id, and the snapshot file. */
interface Entry {
  id: string;
  resticId: string;
  snapshot: ResticSnapshot;
}

/**
 * The tool's snapshots in a restic repository (format v2): one restic snapshot per run, tagged
 * with the tool, the profile and the run's snapshot id, the manifest at `/.sutazai/manifest.json`.
 * Stock restic reads it all; restic's own snapshots (without the tool's tag) are left alone.
 */
export class ResticSnapshots implements SnapshotRepository {
  readonly format = 'restic' as const;
  readonly name: string;
  readonly destination: Destination;
  readonly #options: ResticOptions;
  #repo: Promise<ResticRepository> | undefined;

  constructor(destination: Destination, name: string, options: ResticOptions) {
    this.destination = destination;
    this.name = name;
    this.#options = options;
  }

  get description(): string {
    return `${this.name} (${this.destination.description})`;
  }

  #password(): string {
    if (!this.#options.password) throw new BackupError('E_CONFIG', 'repository.password: format restic needs a password');
    return this.#options.password;
  }

  /** The repository, opened once; `create` makes it when there is none yet (restic init). */
  async #open(create = false): Promise<ResticRepository> {
    this.#repo ??= (async () => {
      const options = { password: this.#password() };
      if (create && !(await this.destination.stat('config'))) return ResticRepository.init(this.destination, options);
      return ResticRepository.open(this.destination, options);
    })();
    this.#repo.catch(() => (this.#repo = undefined));
    return this.#repo;
  }

  /** An empty repository that is not created yet holds no snapshots. */
  async #entries(): Promise<Entry[]> {
    if (!(await this.destination.stat('config'))) return [];
    const repo = await this.#open();
    const entries: Entry[] = [];
    for (const resticId of await repo.list('snapshots')) {
      const snapshot = checkSnapshot(await repo.loadJson('snapshots', resticId), resticId);
      if (!snapshot.tags?.includes(TOOL_TAG)) continue;
      const id = snapshot.tags.find((t) => t.startsWith('id:'))?.slice(3);
      if (id && parseSnapshotId(id)) entries.push({ id, resticId, snapshot });
    }
    return entries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async #entry(id: string): Promise<Entry> {
    const entry = (await this.#entries()).find((e) => e.id === id);
    if (!entry) throw new BackupError('E_NOT_FOUND', `snapshot ${id} not found in ${this.description}`);
    return entry;
  }

  async listing(): Promise<SnapshotListing> {
    return { ids: (await this.#entries()).map((e) => e.id), objects: new Map(), marked: new Set() };
  }

  async snapshotIds(): Promise<string[]> {
    return (await this.listing()).ids;
  }

  /** `latest`, the tool's id or a unique prefix of it, or restic's snapshot id or a unique prefix (8 hex digits, as `restic snapshots` shows). */
  async resolveId(idOrLatest: string): Promise<string> {
    const entries = await this.#entries();
    if (idOrLatest === 'latest') {
      if (!entries.length) throw new BackupError('E_NOT_FOUND', `${this.description} holds no snapshots`);
      return entries.at(-1)!.id;
    }
    const exact = entries.find((e) => e.id === idOrLatest);
    if (exact) return exact.id;
    const matches = entries.filter((e) => e.id.startsWith(idOrLatest) || (/^[0-9a-f]{4,64}$/.test(idOrLatest) && e.resticId.startsWith(idOrLatest)));
    if (matches.length === 1) return matches[0]!.id;
    if (matches.length > 1) throw new BackupError('E_USAGE', `snapshot ${idOrLatest} is ambiguous: ${matches.map((m) => m.id).join(', ')}`);
    throw new BackupError('E_NOT_FOUND', `snapshot ${idOrLatest} not found in ${this.description}`);
  }

  /** The root tree of the tool's snapshot `id`. */
  async rootTree(id: string): Promise<{ repo: ResticRepository; tree: string; resticId: string }> {
    const entry = await this.#entry(id);
    return { repo: await this.#open(), tree: entry.snapshot.tree, resticId: entry.resticId };
  }

  async readManifest(id: string): Promise<Manifest> {
    const { repo, tree, resticId } = await this.rootTree(id);
    const where = `${this.name}: restic snapshot ${resticId.slice(0, 8)} (${id}) ${TOOL_FOLDER}/${MANIFEST_NAME}`;
    const node = (await findPath(repo, tree, `/${TOOL_FOLDER}/${MANIFEST_NAME}`)).at(-1)!;
    const manifest = parseManifest((await readAll(fileStream(repo, node, { label: where }))).toString('utf8'), where);
    if (manifest.id !== id) throw new BackupError('E_INTEGRITY', `${where}: holds the manifest of ${manifest.id}`);
    return manifest;
  }

  async manifests(): Promise<{ manifests: Manifest[]; broken: BrokenSnapshot[] }> {
    const manifests: Manifest[] = [];
    const broken: BrokenSnapshot[] = [];
    for (const id of await this.snapshotIds()) {
      try {
        manifests.push(await this.readManifest(id));
      } catch (err) {
        broken.push({ id, error: err instanceof BackupError ? err : new BackupError('E_INTEGRITY', (err as Error).message) });
      }
    }
    return { manifests, broken };
  }

  async reader(manifest: Manifest, artifact: ArtifactRecord, use: ReaderUse): Promise<ResticArtifact> {
    const { repo, tree } = await this.rootTree(manifest.id);
    return new ResticArtifact(this, repo, tree, manifest, artifact, use);
  }

  async startSnapshot(id: string): Promise<SnapshotWriter> {
    const repo = await this.#open(true);
    const lock = await repo.lock(false);
    try {
      const profile = parseSnapshotId(id)?.profile ?? '';
      const previous = (await this.#entries()).filter((e) => e.snapshot.tags?.includes(profileTag(profile))).at(-1);
      const parent = previous ? { id: previous.resticId, tree: previous.snapshot.tree } : undefined;
      return new ResticSnapshotWriter({ owner: this, repo, lock, id, host: this.#options.host ?? '', parent });
    } catch (err) {
      await lock.release().catch(() => {});
      throw err;
    }
  }

  receive(): Promise<CopyResult> {
    return Promise.reject(new BackupError('E_CONFIG', `${this.description}: replicating a restic repository is not supported yet`));
  }

  /** Removes the snapshot file (restic's forget); its blobs go at the next collectGarbage. */
  async deleteSnapshot(id: string): Promise<void> {
    const entry = await this.#entry(id);
    const repo = await this.#open();
    const lock = await repo.lock(true);
    try {
      await repo.remove('snapshots', entry.resticId);
    } finally {
      await lock.release();
    }
  }

  /** restic's prune: blobs no snapshot references are removed, mostly unused packs repacked. */
  async collectGarbage(logger: Logger): Promise<PruneResult | undefined> {
    if (!(await this.destination.stat('config'))) return undefined;
    const result = await prune(await this.#open());
    logger.info(`${this.name}: restic prune removed ${result.packsDeleted} pack(s), repacked ${result.packsRepacked}`);
    return result;
  }

  async readMarker(): Promise<undefined> {
    return undefined;
  }

  async deleteIncomplete(_id: string, _objects: ObjectInfo[]): Promise<void> {}

  async removeMarker(): Promise<void> {}
}

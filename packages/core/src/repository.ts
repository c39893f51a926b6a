import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { mapLimit } from './concurrency.js';
import { BackupError, isBackupError } from './errors.js';
import { LocalDestination, type Destination, type ObjectInfo } from './destination.js';
import { isPlainFileName, MANIFEST_FILE, parseManifest, serializeManifest, type ArtifactRecord, type Manifest } from './manifest.js';
import { RetryingDestination } from './retry.js';
import { lateStreamReason } from './pipeline/source-stream.js';
import type { CopyResult } from './replicate.js';
import type {
  BrokenSnapshot,
  ReadableArtifact,
  ReaderUse,
  ReceiveOptions,
  SnapshotListing,
  SnapshotMarker,
  SnapshotRepository,
  SnapshotWriteOptions,
  SnapshotWriter,
} from './repository-format.js';
import { compareSnapshotIds, isSnapshotId } from './snapshot-id.js';
import { TOOL_NAME } from './version.js';

export type { BrokenSnapshot, SnapshotListing, SnapshotMarker } from './repository-format.js';
export { mapLimit } from './concurrency.js';

export const SNAPSHOTS_PREFIX = 'snapshots/';

/**
 * The object that marks `snapshots/<id>/` as the tool's own while it is incomplete: written
 * before a destination gets a snapshot's first artifact (removed after its manifest), and before
 * a snapshot is deleted (removed last). A folder without a manifest is removed by prune only when
 * it holds this marker (after a grace period); without it, the folder is not ours and is left alone.
 * Its name starts with a dot, so it never collides with an artifact (`<source>.<ext>`).
 */
export const MARKER_FILE = '.sutazai-incomplete.json';

export function snapshotKey(id: string, file: string): string {
  return `${SNAPSHOTS_PREFIX}${id}/${file}`;
}

/**
 * The tar repository format, over any Destination: `snapshots/<id>/manifest.json` beside one
 * object per artifact (a tar or a file, compressed, maybe encrypted). A snapshot exists iff its
 * manifest does; the manifest is written last and deleted first, so a crash never leaves a half
 * snapshot visible.
 */
export class Repository implements SnapshotRepository {
  readonly format = 'tar' as const;
  readonly destination: Destination;
  /** The name used in messages: `backupRoot` or `destinations.<name>`. */
  readonly name: string;

  constructor(destination: Destination, name: string) {
    this.destination = destination;
    this.name = name;
  }

  get description(): string {
    return `${this.name} (${this.destination.description})`;
  }

  async reader(manifest: Manifest, artifact: ArtifactRecord, use: ReaderUse): Promise<ReadableArtifact> {
    const { ArtifactReader } = await import('./reader.js');
    return new ArtifactReader({ ...use, repository: this, manifest, artifact });
  }

  /** Only backupRoot's: a snapshot is staged in its staging/ and renamed into snapshots/. */
  async startSnapshot(id: string, options: SnapshotWriteOptions): Promise<SnapshotWriter> {
    if (!(this.destination instanceof LocalDestination)) {
      throw new BackupError('E_INTERNAL', `${this.name}: a snapshot is written at backupRoot and copied to destinations`);
    }
    const { StagedSnapshot } = await import('./staged-snapshot.js');
    return StagedSnapshot.start(this.destination.root, id, options);
  }

  async receive(from: SnapshotRepository, manifest: Manifest, held: SnapshotListing, options: ReceiveOptions): Promise<CopyResult> {
    if (!(from instanceof Repository)) throw new BackupError('E_INTERNAL', `${from.name} is in the ${from.format} format, ${this.name} in tar`);
    const { copySnapshot } = await import('./replicate.js');
    const existing = new Map([...held.objects.values()].flat().map((o) => [o.key, o]));
    return copySnapshot(from, this, manifest, existing, options);
  }

  async listing(): Promise<SnapshotListing> {
    const objects = new Map<string, ObjectInfo[]>();
    const ids: string[] = [];
    const marked = new Set<string>();
    for (const info of await this.destination.list(SNAPSHOTS_PREFIX)) {
      const rest = info.key.slice(SNAPSHOTS_PREFIX.length);
      const slash = rest.indexOf('/');
      if (slash <= 0) continue;
      const id = rest.slice(0, slash);
      // Names from a listing become paths (a local copy, a deletion): only the repository's own grammar.
      if (!isSnapshotId(id) || !isPlainFileName(rest.slice(slash + 1))) continue;
      const group = objects.get(id) ?? [];
      group.push(info);
      objects.set(id, group);
      const file = rest.slice(slash + 1);
      if (file === MANIFEST_FILE) ids.push(id);
      else if (file === MARKER_FILE) marked.add(id);
    }
    ids.sort(compareSnapshotIds);
    return { ids, objects, marked };
  }

  async snapshotIds(): Promise<string[]> {
    return (await this.listing()).ids;
  }

  async readManifest(id: string): Promise<Manifest> {
    const key = snapshotKey(id, MANIFEST_FILE);
    let text: string;
    try {
      text = await readAll(untouched(await this.destination.get(key), this, key));
    } catch (err) {
      if (isBackupError(err) && err.code === 'E_NOT_FOUND') {
        throw new BackupError('E_NOT_FOUND', `snapshot ${id} not found in ${this.description}`, { cause: err });
      }
      throw wrapDestinationError(err, this, `reading ${key}`);
    }
    const manifest = parseManifest(text, `${this.name}: ${key}`);
    if (manifest.id !== id) {
      throw new BackupError('E_INTEGRITY', `${this.name}: ${key} holds the manifest of snapshot ${manifest.id}, not ${id}`);
    }
    return manifest;
  }

  /** Every readable manifest, oldest first, and the snapshots whose manifest is damaged. */
  async manifests(): Promise<{ manifests: Manifest[]; broken: BrokenSnapshot[] }> {
    const { ids } = await this.listing();
    const results = await mapLimit(ids, 8, async (id) => {
      try {
        return { id, manifest: await this.readManifest(id) };
      } catch (err) {
        if (isBackupError(err) && err.code === 'E_INTEGRITY') return { id, error: err };
        throw err;
      }
    });
    const manifests: Manifest[] = [];
    const broken: BrokenSnapshot[] = [];
    for (const r of results) {
      if ('manifest' in r && r.manifest) manifests.push(r.manifest);
      else if ('error' in r && r.error) broken.push({ id: r.id, error: r.error });
    }
    return { manifests, broken };
  }

  /** Resolves `latest` (or an id prefix) to a snapshot id. */
  async resolveId(idOrLatest: string): Promise<string> {
    const { ids } = await this.listing();
    if (idOrLatest === 'latest') {
      const latest = ids.at(-1);
      if (!latest) throw new BackupError('E_NOT_FOUND', `${this.description} holds no snapshots`);
      return latest;
    }
    if (ids.includes(idOrLatest)) return idOrLatest;
    const matches = ids.filter((id) => id.startsWith(idOrLatest));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new BackupError('E_USAGE', `snapshot id ${idOrLatest} is ambiguous: ${matches.slice(0, 5).join(', ')}`);
    }
    throw new BackupError('E_NOT_FOUND', `snapshot ${idOrLatest} not found in ${this.description}`);
  }

  async openArtifact(id: string, file: string): Promise<Readable> {
    const key = snapshotKey(id, file);
    let body: Readable;
    try {
      body = await this.destination.get(key);
    } catch (err) {
      throw wrapDestinationError(err, this, `reading ${key}`);
    }
    return untouched(body, this, key);
  }

  /**
   * The artifact as an open file when the repository is a local folder (read without a stream),
   * else undefined. The caller closes it.
   */
  async openArtifactFile(id: string, file: string): Promise<fsp.FileHandle | undefined> {
    // A registered destination comes wrapped in retries; the folder is the one inside.
    const folder = this.destination instanceof RetryingDestination ? this.destination.inner : this.destination;
    if (!(folder instanceof LocalDestination)) return undefined;
    const key = snapshotKey(id, file);
    try {
      return await folder.open(key);
    } catch (err) {
      if (isBackupError(err) && err.code === 'E_NOT_FOUND') throw err;
      throw wrapDestinationError(err, this, `reading ${key}`);
    }
  }

  /**
   * Deletes a snapshot: the marker first (so a crash mid-way leaves a folder prune recognises as
   * its own), then the manifest (so the snapshot stops existing at once), the artifacts, and the
   * marker last.
   */
  async deleteSnapshot(id: string, objects?: ObjectInfo[], at: Date = new Date()): Promise<void> {
    const keys = objects?.map((o) => o.key) ?? (await this.destination.list(`${SNAPSHOTS_PREFIX}${id}/`)).map((o) => o.key);
    const manifestKey = snapshotKey(id, MANIFEST_FILE);
    const markerKey = snapshotKey(id, MARKER_FILE);
    try {
      await this.putMarker(id, 'deleting', at);
      await this.destination.delete(manifestKey);
      for (const key of keys) if (key !== manifestKey && key !== markerKey) await this.destination.delete(key);
      await this.destination.delete(markerKey);
    } catch (err) {
      throw wrapDestinationError(err, this, `deleting snapshot ${id}`);
    }
  }

  /** Deletes a folder without a manifest that holds the marker: its objects, the marker last. */
  async deleteIncomplete(id: string, objects: ObjectInfo[]): Promise<void> {
    const markerKey = snapshotKey(id, MARKER_FILE);
    try {
      for (const o of objects) if (o.key !== markerKey) await this.destination.delete(o.key);
      await this.destination.delete(markerKey);
    } catch (err) {
      throw wrapDestinationError(err, this, `deleting the incomplete snapshot ${id}`);
    }
  }

  async putMarker(id: string, state: SnapshotMarker['state'], at: Date): Promise<void> {
    const marker: SnapshotMarker = { tool: TOOL_NAME, snapshot: id, state, since: at.toISOString() };
    const body = Buffer.from(`${JSON.stringify(marker)}\n`);
    await this.destination.put(snapshotKey(id, MARKER_FILE), ReadableStream.from([body]), { size: body.length });
  }

  async removeMarker(id: string): Promise<void> {
    await this.destination.delete(snapshotKey(id, MARKER_FILE));
  }

  /** The marker of `snapshots/<id>/`, or undefined when it is missing or not one the tool wrote. */
  async readMarker(id: string): Promise<SnapshotMarker | undefined> {
    let text: string;
    try {
      text = await readAll(await this.destination.get(snapshotKey(id, MARKER_FILE)));
    } catch (err) {
      if (isBackupError(err) && err.code === 'E_NOT_FOUND') return undefined;
      throw wrapDestinationError(err, this, `reading ${snapshotKey(id, MARKER_FILE)}`);
    }
    try {
      const m = JSON.parse(text) as Partial<SnapshotMarker>;
      const valid = m.tool === TOOL_NAME && m.snapshot === id && (m.state === 'uploading' || m.state === 'deleting') && typeof m.since === 'string' && !Number.isNaN(Date.parse(m.since));
      return valid ? (m as SnapshotMarker) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Writes a manifest; callers put every artifact first. */
  async putManifest(manifest: Manifest): Promise<void> {
    const body = Buffer.from(serializeManifest(manifest));
    const key = snapshotKey(manifest.id, MANIFEST_FILE);
    try {
      await this.destination.put(key, ReadableStream.from([body]), { size: body.length });
    } catch (err) {
      throw wrapDestinationError(err, this, `writing ${key}`);
    }
  }
}

/**
 * A destination's `get` must hand over a stream nobody has read (bytes it already lost would fail
 * the size and sha256 checks, and be taken for a damaged artifact): one that was read from, ended
 * or left flowing is the destination's fault, and said so.
 */
function untouched(body: Readable, repo: Repository, key: string): Readable {
  const late = lateStreamReason(body);
  if (!late) return body;
  body.destroy();
  throw new BackupError('E_DESTINATION', `${repo.name}: reading ${key}: the stream the destination's get() returned ${late}: it must return one nobody has read yet`, {
    details: { destination: repo.name },
  });
}

export function wrapDestinationError(err: unknown, repo: Repository, doing: string): BackupError {
  if (isBackupError(err)) {
    if (!err.message.includes(repo.name)) {
      const wrapped = new BackupError(err.code, `${repo.name}: ${doing}: ${err.message}`, { cause: err, details: err.details });
      return wrapped;
    }
    return err;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BackupError('E_DESTINATION', `${repo.name}: ${doing}: ${message}`, { cause: err, details: { destination: repo.name } });
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

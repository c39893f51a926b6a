/**
 * The repository layout over a real folder: what `list` shows (only names of the repository's
 * own grammar), how ids and `latest` resolve, how a manifest is read back and what is said when
 * it cannot be, and the order of a deletion (a crash at any point leaves either a snapshot or
 * a folder prune recognises as the tool's own).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PrefixedDestination, LocalDestination } from '../src/destination.js';
import { BackupError } from '../src/errors.js';
import { serializeManifest, type Manifest } from '../src/manifest.js';
import { MARKER_FILE, mapLimit, readAll, Repository, wrapDestinationError } from '../src/repository.js';
import { RecordingDestination, writeFolder } from './helpers/repo-fixtures.js';

const ids = ['20261124T020000Z-daily-0001', '20261125T020000Z-daily-0002', '20261125T020000Z-weekly-0003', '20261126T020000Z-daily-0004'];
const manifestOf = (id: string): Manifest => ({
  formatVersion: 1,
  id,
  profile: id.split('-')[1]!,
  host: 'h',
  startedAt: '2026-11-26T02:00:00.000Z',
  finishedAt: '2026-11-26T02:00:01.000Z',
  tool: { name: 'sutazai-backup', version: '0.1.0' },
  artifacts: [],
});

let dir: string;
let destination: RecordingDestination;
let repo: Repository;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-repository-'));
  destination = new RecordingDestination(dir);
  repo = new Repository(destination, 'destinations.offsite');
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const commit = (id: string, manifest = manifestOf(id)) => writeFolder(dir, id, { 'configs.tar.zst': 'data', 'manifest.json': serializeManifest(manifest) });

async function rejection(p: Promise<unknown>): Promise<BackupError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackupError);
  return err as BackupError;
}

describe('listing', () => {
  it('shows committed snapshots oldest first, groups every object of the repository grammar by snapshot, and nothing else', async () => {
    for (const id of [...ids].reverse()) await commit(id);
    await writeFolder(dir, '20261127T020000Z-daily-0005', { 'half.tar.zst': 'x' });
    await fsp.mkdir(path.join(dir, 'snapshots', 'not-a-snapshot'));
    await fsp.writeFile(path.join(dir, 'snapshots', 'not-a-snapshot', 'manifest.json'), '{}');
    await fsp.writeFile(path.join(dir, 'snapshots', 'README'), 'a file at the top');
    // An editor's backup copy beside the folders, named like a snapshot plus one character.
    await fsp.writeFile(path.join(dir, 'snapshots', `${ids[1]}~`), 'stray');
    await writeFolder(dir, ids[0]!, { 'bad\u0001name': 'x' });
    await fsp.writeFile(path.join(dir, 'outside.txt'), 'not under snapshots/');

    const listing = await repo.listing();
    expect(listing.ids).toEqual(ids);
    expect([...listing.objects.keys()].sort()).toEqual([...ids, '20261127T020000Z-daily-0005'].sort());
    expect(listing.objects.get(ids[1]!)!.map((o) => o.key).sort()).toEqual([`snapshots/${ids[1]}/configs.tar.zst`, `snapshots/${ids[1]}/manifest.json`]);
    expect(listing.objects.get(ids[0]!)!.map((o) => o.key).sort()).toEqual([`snapshots/${ids[0]}/configs.tar.zst`, `snapshots/${ids[0]}/manifest.json`]);
    expect(listing.objects.get('20261127T020000Z-daily-0005')).toEqual([{ key: 'snapshots/20261127T020000Z-daily-0005/half.tar.zst', size: 1, modified: expect.any(Date) }]);
    expect(await repo.snapshotIds()).toEqual(ids);
  });

  it('a folder holding a folder named manifest.json is not a snapshot', async () => {
    await fsp.mkdir(path.join(dir, 'snapshots', ids[0]!, 'manifest.json', 'x'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'snapshots', ids[0]!, 'manifest.json', 'x', 'y'), 'nested');
    expect((await repo.listing()).ids).toEqual([]);
  });
});

describe('resolveId', () => {
  beforeEach(async () => {
    for (const id of ids) await commit(id);
  });

  it('resolves latest, a full id and a unique prefix', async () => {
    expect(await repo.resolveId('latest')).toBe(ids[3]);
    expect(await repo.resolveId(ids[1]!)).toBe(ids[1]);
    expect(await repo.resolveId('20261124')).toBe(ids[0]);
    expect(await repo.resolveId('20261125T020000Z-w')).toBe(ids[2]);
  });

  it('a full id is that snapshot even when it begins another id (a profile named like an id\'s tail)', async () => {
    await commit('20261125T020000Z-daily-0002-0b0b');
    expect(await repo.resolveId(ids[1]!)).toBe(ids[1]);
  });

  it('refuses an ambiguous prefix, naming the candidates, and says what is missing', async () => {
    expect((await rejection(repo.resolveId('20261125'))).toJSON()).toEqual({ code: 'E_USAGE', message: `snapshot id 20261125 is ambiguous: ${ids[1]}, ${ids[2]}` });
    for (let i = 0; i < 4; i++) await commit(`20261125T03000${i}Z-daily-00a${i}`);
    expect((await rejection(repo.resolveId('20261125'))).message).toBe(
      `snapshot id 20261125 is ambiguous: ${ids[1]}, ${ids[2]}, 20261125T030000Z-daily-00a0, 20261125T030001Z-daily-00a1, 20261125T030002Z-daily-00a2`,
    );
    expect((await rejection(repo.resolveId('2027'))).toJSON()).toEqual({ code: 'E_NOT_FOUND', message: `snapshot 2027 not found in destinations.offsite (local:${dir})` });
    const empty = new Repository(new LocalDestination(path.join(dir, 'empty')), 'backupRoot');
    expect((await rejection(empty.resolveId('latest'))).toJSON()).toEqual({ code: 'E_NOT_FOUND', message: `backupRoot (local:${path.join(dir, 'empty')}) holds no snapshots` });
  });
});

describe('readManifest and manifests', () => {
  it('reads a manifest back, and refuses one that is missing, damaged or of another snapshot', async () => {
    for (const id of ids.slice(0, 2)) await commit(id);
    await commit(ids[2]!, manifestOf(ids[1]!));
    await writeFolder(dir, ids[3]!, { 'manifest.json': '{"formatVersion": 1, "id": ' });

    expect(await repo.readManifest(ids[0]!)).toEqual(manifestOf(ids[0]!));
    const missing = await rejection(repo.readManifest('20261101T000000Z-daily-0000'));
    expect(missing.toJSON()).toEqual({ code: 'E_NOT_FOUND', message: `snapshot 20261101T000000Z-daily-0000 not found in destinations.offsite (local:${dir})` });
    expect((await rejection(repo.readManifest(ids[2]!))).toJSON()).toEqual({
      code: 'E_INTEGRITY',
      message: `destinations.offsite: snapshots/${ids[2]}/manifest.json holds the manifest of snapshot ${ids[1]}, not ${ids[2]}`,
    });
    expect((await rejection(repo.readManifest(ids[3]!))).message).toMatch(new RegExp(`^destinations\\.offsite: snapshots/${ids[3]}/manifest\\.json: manifest is not valid JSON`));

    const { manifests, broken } = await repo.manifests();
    expect(manifests.map((m) => m.id)).toEqual(ids.slice(0, 2));
    expect(broken.map((b) => [b.id, b.error.code])).toEqual([
      [ids[2], 'E_INTEGRITY'],
      [ids[3], 'E_INTEGRITY'],
    ]);
  });

  it("a destination that cannot be read fails the whole listing of manifests, named", async () => {
    for (const id of ids) await commit(id);
    class Unreachable extends LocalDestination {
      override async get(key: string): Promise<Readable> {
        if (key.endsWith(`${ids[2]}/manifest.json`)) throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:22'), { code: 'ECONNREFUSED' });
        return super.get(key);
      }
    }
    const unreachable = new Repository(new Unreachable(dir), 'destinations.nas');
    expect((await rejection(unreachable.manifests())).toJSON()).toEqual({
      code: 'E_DESTINATION',
      message: `destinations.nas: reading snapshots/${ids[2]}/manifest.json: connect ECONNREFUSED 10.0.0.9:22`,
      details: { destination: 'destinations.nas' },
    });
  });

  it('refuses a stream from get() that was already read from, naming the destination', async () => {
    await commit(ids[0]!);
    class Eager extends LocalDestination {
      override async get(key: string): Promise<Readable> {
        const stream = await super.get(key);
        await new Promise((r) => stream.once('readable', r));
        stream.read(1);
        return stream;
      }
    }
    const eager = new Repository(new Eager(dir), 'destinations.eager');
    for (const read of [() => eager.readManifest(ids[0]!), () => eager.openArtifact(ids[0]!, 'configs.tar.zst')]) {
      expect((await rejection(read())).toJSON()).toEqual({
        code: 'E_DESTINATION',
        message: expect.stringMatching(/^destinations\.eager: reading snapshots\/.*: the stream the destination's get\(\) returned had already been read from: it must return one nobody has read yet$/),
        details: { destination: 'destinations.eager' },
      });
    }
  });
});

describe('artifacts', () => {
  it('opens an artifact as a stream anywhere and as a file at a local folder; a missing one is named', async () => {
    await commit(ids[0]!);
    expect(await readAll(await repo.openArtifact(ids[0]!, 'configs.tar.zst'))).toBe('data');
    const handle = await repo.openArtifactFile(ids[0]!, 'configs.tar.zst');
    try {
      expect(await handle!.readFile('utf8')).toBe('data');
    } finally {
      await handle!.close();
    }
    expect((await rejection(repo.openArtifactFile(ids[0]!, 'gone.tar.zst'))).toJSON()).toEqual({ code: 'E_NOT_FOUND', message: `local:${dir}: snapshots/${ids[0]}/gone.tar.zst does not exist` });
    expect((await rejection(repo.openArtifact(ids[0]!, 'gone.tar.zst'))).message).toBe(`destinations.offsite: reading snapshots/${ids[0]}/gone.tar.zst: local:${dir}: snapshots/${ids[0]}/gone.tar.zst does not exist`);
    await fsp.symlink('/etc/hostname', path.join(dir, 'snapshots', ids[0]!, 'planted.tar.zst'));
    expect((await rejection(repo.openArtifactFile(ids[0]!, 'planted.tar.zst'))).toJSON()).toMatchObject({
      code: 'E_CONFIG',
      message: `destinations.offsite: reading snapshots/${ids[0]}/planted.tar.zst: ${path.join(dir, 'snapshots', ids[0]!, 'planted.tar.zst')} is a symbolic link: the tool never follows links inside its own folders (one may have been planted); remove it`,
    });
    // Anything but a plain local folder is read as a stream.
    const prefixed = new Repository(new PrefixedDestination(new LocalDestination(dir), ''), 'destinations.prefixed');
    expect(await prefixed.openArtifactFile(ids[0]!, 'configs.tar.zst')).toBeUndefined();
    class Unreadable extends LocalDestination {
      override async open(): Promise<fsp.FileHandle> {
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      }
    }
    expect((await rejection(new Repository(new Unreadable(dir), 'backupRoot').openArtifactFile(ids[0]!, 'configs.tar.zst'))).message).toBe(
      `backupRoot: reading snapshots/${ids[0]}/configs.tar.zst: EACCES: permission denied`,
    );
  });
});

describe('deleting', () => {
  it("a snapshot: marker first, then the manifest (the snapshot is gone), the artifacts, the marker last and once", async () => {
    // A marker already there: an upload stopped after its manifest was written.
    const stray = JSON.stringify({ tool: 'sutazai-backup', snapshot: ids[0], state: 'uploading', since: '2026-11-25T00:00:00.000Z' });
    await writeFolder(dir, ids[0]!, { 'a.tar.zst': '1', [MARKER_FILE]: stray, 'b.dump': '2', 'manifest.json': serializeManifest(manifestOf(ids[0]!)) });
    await commit(ids[1]!);
    const at = new Date('2026-11-26T12:00:00Z');
    const markerBytes = Buffer.byteLength(`${JSON.stringify({ tool: 'sutazai-backup', snapshot: ids[0], state: 'deleting', since: at.toISOString() })}\n`);
    await repo.deleteSnapshot(ids[0]!, undefined, at);
    expect(destination.calls).toEqual([
      `put snapshots/${ids[0]}/${MARKER_FILE} (${markerBytes} bytes)`,
      `delete snapshots/${ids[0]}/manifest.json`,
      `delete snapshots/${ids[0]}/b.dump`,
      `delete snapshots/${ids[0]}/a.tar.zst`,
      `delete snapshots/${ids[0]}/${MARKER_FILE}`,
    ]);
    expect((await repo.listing()).ids).toEqual([ids[1]]);
    expect(await fsp.readdir(path.join(dir, 'snapshots'))).toEqual([ids[1]]);
  });

  it('a deletion cut short after the manifest leaves the marker, saying when the deletion started', async () => {
    await commit(ids[0]!);
    class Failing extends RecordingDestination {
      override async delete(key: string): Promise<void> {
        if (key.endsWith('configs.tar.zst')) throw new Error('EIO: i/o error');
        return super.delete(key);
      }
    }
    const failing = new Repository(new Failing(dir), 'destinations.offsite');
    const at = new Date('2026-11-26T12:00:00Z');
    expect((await rejection(failing.deleteSnapshot(ids[0]!, undefined, at))).toJSON()).toEqual({
      code: 'E_DESTINATION',
      message: `destinations.offsite: deleting snapshot ${ids[0]}: EIO: i/o error`,
      details: { destination: 'destinations.offsite' },
    });
    expect(await repo.readMarker(ids[0]!)).toEqual({ tool: 'sutazai-backup', snapshot: ids[0], state: 'deleting', since: at.toISOString() });
    expect((await repo.listing()).ids).toEqual([]);

    const listing = await repo.listing();
    await expect(failing.deleteIncomplete(ids[0]!, listing.objects.get(ids[0]!)!)).rejects.toThrow(`destinations.offsite: deleting the incomplete snapshot ${ids[0]}: EIO: i/o error`);
    expect(await repo.readMarker(ids[0]!)).toBeDefined();
  });

  it('an incomplete folder: its objects, the marker last', async () => {
    await writeFolder(dir, ids[0]!, { 'a.tar.zst': '1', [MARKER_FILE]: JSON.stringify({ tool: 'sutazai-backup', snapshot: ids[0], state: 'uploading', since: '2026-11-20T00:00:00Z' }), 'b.dump': '2' });
    const listing = await repo.listing();
    await repo.deleteIncomplete(ids[0]!, listing.objects.get(ids[0]!)!);
    expect(destination.calls).toEqual([`delete snapshots/${ids[0]}/b.dump`, `delete snapshots/${ids[0]}/a.tar.zst`, `delete snapshots/${ids[0]}/${MARKER_FILE}`]);
    await expect(fsp.access(path.join(dir, 'snapshots'))).rejects.toThrow();
  });
});

describe('markers', () => {
  const write = (content: string) => writeFolder(dir, ids[0]!, { [MARKER_FILE]: content });

  it('reads back what putMarker wrote, and only a marker the tool wrote for this snapshot', async () => {
    const since = new Date('2026-11-26T12:00:00Z');
    await repo.putMarker(ids[0]!, 'uploading', since);
    expect(await fsp.readFile(path.join(dir, 'snapshots', ids[0]!, MARKER_FILE), 'utf8')).toBe(`{"tool":"sutazai-backup","snapshot":"${ids[0]}","state":"uploading","since":"2026-11-26T12:00:00.000Z"}\n`);
    expect(await repo.readMarker(ids[0]!)).toEqual({ tool: 'sutazai-backup', snapshot: ids[0], state: 'uploading', since: since.toISOString() });
    const good = { tool: 'sutazai-backup', snapshot: ids[0], state: 'deleting', since: '2026-11-26T12:00:00Z' };
    for (const bad of [{ tool: 'other' }, { snapshot: ids[1] }, { state: 'paused' }, { since: 'yesterday' }, { since: 2026 }]) {
      await write(JSON.stringify({ ...good, ...bad }));
      expect(await repo.readMarker(ids[0]!), JSON.stringify(bad)).toBeUndefined();
    }
    await write('{"tool": "sutazai-backup", ');
    expect(await repo.readMarker(ids[0]!)).toBeUndefined();
    await write(JSON.stringify(good));
    expect(await repo.readMarker(ids[0]!)).toEqual(good);
    await repo.removeMarker(ids[0]!);
    expect(await repo.readMarker(ids[0]!)).toBeUndefined();
  });

  it('a marker that cannot be read is an error, named; only a missing one is no marker', async () => {
    await write('{}');
    class Broken extends LocalDestination {
      override async get(): Promise<Readable> {
        throw new Error('ETIMEDOUT');
      }
    }
    const broken = new Repository(new Broken(dir), 'destinations.nas');
    await expect(broken.readMarker(ids[0]!)).rejects.toThrow(`destinations.nas: reading snapshots/${ids[0]}/${MARKER_FILE}: ETIMEDOUT`);
    class Denied extends LocalDestination {
      override async get(): Promise<Readable> {
        throw new BackupError('E_AUTH', 'access denied');
      }
    }
    expect((await rejection(new Repository(new Denied(dir), 'destinations.s3').readMarker(ids[0]!))).toJSON()).toEqual({
      code: 'E_AUTH',
      message: `destinations.s3: reading snapshots/${ids[0]}/${MARKER_FILE}: access denied`,
    });
  });
});

describe('putManifest', () => {
  it('writes the manifest where listing finds it; a failed write is named', async () => {
    await repo.putManifest(manifestOf(ids[0]!));
    expect(destination.calls).toEqual([`put snapshots/${ids[0]}/manifest.json (${Buffer.byteLength(serializeManifest(manifestOf(ids[0]!)))} bytes)`]);
    expect((await repo.listing()).ids).toEqual([ids[0]]);
    expect(await fsp.readFile(path.join(dir, 'snapshots', ids[0]!, 'manifest.json'), 'utf8')).toBe(serializeManifest(manifestOf(ids[0]!)));
    class Full extends LocalDestination {
      override async put(): Promise<void> {
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      }
    }
    await expect(new Repository(new Full(dir), 'backupRoot').putManifest(manifestOf(ids[1]!))).rejects.toThrow(
      `backupRoot: writing snapshots/${ids[1]}/manifest.json: ENOSPC: no space left on device`,
    );
  });
});

describe('wrapDestinationError', () => {
  it("names the repository once, keeps a BackupError's code and details, and says what a thrown non-error was", () => {
    const own = new BackupError('E_AUTH', 'destinations.offsite: access denied', { details: { status: 403 } });
    expect(wrapDestinationError(own, repo, 'reading x')).toBe(own);
    const bare = wrapDestinationError(new BackupError('E_AUTH', 'access denied', { details: { status: 403 } }), repo, 'reading x');
    expect(bare.toJSON()).toEqual({ code: 'E_AUTH', message: 'destinations.offsite: reading x: access denied', details: { status: 403 } });
    expect(bare.cause).toBeInstanceOf(BackupError);
    expect(wrapDestinationError('socket hang up', repo, 'listing').toJSON()).toEqual({
      code: 'E_DESTINATION',
      message: 'destinations.offsite: listing: socket hang up',
      details: { destination: 'destinations.offsite' },
    });
  });
});

describe('helpers', () => {
  it('readAll joins string and buffer chunks', async () => {
    const stream = new PassThrough();
    stream.write('ab');
    stream.write(Buffer.from('cé'));
    stream.end();
    expect(await readAll(stream)).toBe('abcé');
  });

  it('mapLimit keeps the order and runs at most `limit` at once', async () => {
    let running = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3, 0, 6], 3, async (n, i) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, n * 3));
      running--;
      return `${i}:${n}`;
    });
    expect(out).toEqual(['0:5', '1:1', '2:4', '3:2', '4:3', '5:0', '6:6']);
    expect(most).toBe(3);
    expect(await mapLimit([], 8, async () => 1)).toEqual([]);
  });
});

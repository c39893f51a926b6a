import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { Archiver } from '../../src/restic/archiver.js';
import { FastCdcChunker } from '../../src/restic/fastcdc.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { restoreSnapshot } from '../../src/restic/restorer.js';
import { checkSnapshot, newSnapshot } from '../../src/restic/snapshot.js';
import { findPath } from '../../src/restic/walk.js';
import { TEST_KDF } from '../../../../test/helpers/restic.js';
import { compareTrees, makeFixture } from './fixture.js';
import { RESTIC_PASSWORD, latestSnapshot, restic } from './restic-cli.js';

/** Bytes of every file under a folder (a repository's size on disk). */
async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath ?? entry.path, entry.name))).size;
  }
  return total;
}

/** Archives `paths` as source `files` (and streams) into the repository and writes a snapshot. */
async function backup(repo: ResticRepository, paths: string[], options: { parent?: { id: string; tree: string }; streams?: Record<string, Buffer> } = {}) {
  const archiver = new Archiver({
    store: repo,
    chunker: () => new FastCdcChunker(repo.config.chunkerPolynomial),
    ...(options.parent ? { parentTree: options.parent.tree } : {}),
  });
  await archiver.addTree('files', paths);
  for (const [name, bytes] of Object.entries(options.streams ?? {})) await archiver.addStream('db', name, Readable.from([bytes]));
  const tree = await archiver.finish();
  await repo.flush();
  const snapshot = newSnapshot({ tree, paths: ['/files', ...(options.streams ? ['/db'] : [])], tags: ['sutazai'], parent: options.parent?.id, timeNs: archiver.timeNs });
  const id = await repo.saveJson('snapshots', snapshot);
  return { id, tree, stats: archiver.stats };
}

describe('end to end with stock restic', () => {
  let dir: string;
  let source: string;
  beforeAll(async () => {
    dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'restic-e2e-')));
    source = path.join(dir, 'src');
    await makeFixture(source);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('restic checks, lists and restores byte for byte what the archiver wrote', async () => {
    const repoDir = path.join(dir, 'ours');
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: RESTIC_PASSWORD, kdf: TEST_KDF });
    const dump = randomBytes(2_500_000);
    const { id } = await backup(repo, [source], { streams: { 'dump.sql': dump } });

    await restic(repoDir, ['check', '--read-data']);
    const listed = JSON.parse(await restic(repoDir, ['snapshots', '--json']));
    expect(listed).toMatchObject([{ id, paths: ['/db', '/files'], tags: ['sutazai'] }]);
    const ls = (await restic(repoDir, ['ls', '--json', id])).trim().split('\n').slice(1).map((l) => JSON.parse(l).path as string);
    expect(ls).toContain(`/files${source}/sub/deeper/note.md`);
    expect(ls).toContain('/db/dump.sql');

    const target = path.join(dir, 'restored-by-restic');
    await restic(repoDir, ['restore', id, '--target', target]);
    // restic restores everything as it was (setuid bits, FIFOs, devices, absolute links), but
    // sockets, which neither restic nor the archiver keep.
    expect(await compareTrees(source, path.join(target, 'files', source), { keepSetuid: true, skip: (st) => st.isSocket() })).toEqual([]);
    expect((await readFile(path.join(target, 'db', 'dump.sql'))).equals(dump)).toBe(true);
  });

  it('restores byte for byte a snapshot restic wrote', async () => {
    const repoDir = path.join(dir, 'theirs');
    await restic(repoDir, ['init', '--repository-version', '2']);
    await restic(repoDir, ['backup', source]);
    const repo = await ResticRepository.open(new LocalDestination(repoDir), { password: RESTIC_PASSWORD });
    const [id] = await repo.list('snapshots');
    const snapshot = checkSnapshot(await repo.loadJson('snapshots', id!), id!);
    const target = path.join(dir, 'restored-by-us');
    const warnings: string[] = [];
    await restoreSnapshot({ store: repo, rootTree: snapshot.tree, target, label: `snapshot ${id}`, linkRootDepth: 0, preserveOwner: true, onWarning: (w) => warnings.push(w) });
    const diffs = await compareTrees(source, path.join(target, source), {
      keepSetuid: true,
      skip: (st) => st.isFIFO() || st.isSocket() || st.isCharacterDevice(),
      // restic's snapshot keeps absolute paths from the target down: /etc/passwd is target/etc/passwd.
      expectLink: (p, t) => (t.startsWith('/') ? path.relative(path.dirname(path.join(source, p)), t) : t),
    });
    expect(diffs).toEqual([]);
    expect(warnings).toContain(`snapshot ${id}: 2 device node(s), FIFO(s) or socket(s) left out`);
  });

  it('stores only the new end of an appended log, and reads nothing else again', async () => {
    const repoDir = path.join(dir, 'dedup');
    const logs = path.join(dir, 'logs');
    await mkdir(logs);
    const log = path.join(logs, 'app.log');
    const line = (i: number) => `2024-05-01T12:${String(i % 60).padStart(2, '0')}:00Z level=info request=${i} user=${(i * 7919) % 1000} ${randomBytes(6).toString('hex')}\n`;
    await writeFile(log, Array.from({ length: 150_000 }, (_, i) => line(i)).join(''));
    await writeFile(path.join(logs, 'model.bin'), randomBytes(6 * 1024 * 1024));
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: RESTIC_PASSWORD, kdf: TEST_KDF });
    const first = await backup(repo, [logs]);
    const sizeBefore = await folderBytes(repoDir);

    const appended = Array.from({ length: 10_000 }, (_, i) => line(150_000 + i)).join('');
    await appendFile(log, appended);
    const second = await backup(repo, [logs], { parent: first });
    const added = (await folderBytes(repoDir)) - sizeBefore;

    const before = (await findPath(repo, first.tree, `/files${log}`)).at(-1)!.content!;
    const after = (await findPath(repo, second.tree, `/files${log}`)).at(-1)!.content!;
    expect(after.slice(0, before.length - 1)).toEqual(before.slice(0, -1));
    const newChunks = after.slice(before.length - 1);
    const newPlaintext = newChunks.reduce((sum, id) => sum + repo.plaintextSize('data', id)!, 0);
    expect(second.stats).toMatchObject({ filesUnmodified: 1, filesChanged: 1, dataBlobs: newChunks.length });
    // The new chunks (compressed), three trees, an index and a snapshot file: nothing more.
    expect(added).toBeLessThan(newPlaintext + 64 * 1024);
    expect(added).toBeGreaterThan(appended.length / 20);
    await restic(repoDir, ['check', '--read-data']);
    const latest = await latestSnapshot(repoDir);
    expect(latest.id).toBe(second.id);
    console.log(`appended ${appended.length} bytes to a ${(await stat(log)).size}-byte log: ${newChunks.length} new chunk(s), ${newPlaintext} bytes of plaintext, repository grew ${added} bytes`);
  });
});

import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { Archiver } from '../../src/restic/archiver.js';
import { FastCdcChunker } from '../../src/restic/fastcdc.js';
import { prune } from '../../src/restic/prune.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { newSnapshot } from '../../src/restic/snapshot.js';
import { restoreSnapshot } from '../../src/restic/restorer.js';
import { RESTIC, TEST_KDF } from '../../../../test/helpers/restic.js';
import { compareTrees } from './fixture.js';
import { makeHistory } from './history.js';
import { RESTIC_PASSWORD, restic } from './restic-cli.js';

/** restic's smallest pack size: restic, given the same, judges small packs as we do. */
const PACK = 4 * 1024 * 1024;

async function backup(repo: ResticRepository, source: string, parent?: { id: string; tree: string }) {
  const archiver = new Archiver({ store: repo, chunker: () => new FastCdcChunker(repo.config.chunkerPolynomial), ...(parent ? { parentTree: parent.tree } : {}) });
  await archiver.addTree('files', [source]);
  const tree = await archiver.finish();
  await repo.flush();
  const id = await repo.saveJson('snapshots', newSnapshot({ tree, paths: ['/files'], parent: parent?.id, timeNs: archiver.timeNs }));
  return { id, tree };
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  return total;
}

/** restic's account of a prune (its verbose output): what it would still repack and delete. */
function resticPrunePlan(output: string): { repackBlobs: number; deleteBlobs: number } {
  const num = (re: RegExp) => Number(re.exec(output)?.[1] ?? NaN);
  return { repackBlobs: num(/to repack:\s+(\d+) blobs/), deleteBlobs: num(/to delete:\s+(\d+) blobs/) };
}

describe('prune', () => {
  let work: string;
  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'restic-prune-')));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('forgets snapshots and collects their garbage; restic checks the data, restores the rest, and finds nothing to prune after', async () => {
    const source = path.join(work, 'src1');
    const repoDir = path.join(work, 'ours');
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: RESTIC_PASSWORD, kdf: TEST_KDF, packSize: PACK });
    const snaps = [];
    const states: string[] = [];
    for (let step = 0; step < 4; step++) {
      await makeHistory(source, step);
      snaps.push(await backup(repo, source, snaps.at(-1)));
      states.push(path.join(work, `state1-${step}`));
      execFileSync('cp', ['-a', source, states[step]!]);
    }
    const before = await folderBytes(repoDir);

    const result = await prune(repo, { forget: [snaps[0]!.id, snaps[1]!.id] });
    expect(result).toMatchObject({ snapshotsRemoved: 2, snapshotsKept: 2 });
    expect(result.packsDeleted).toBeGreaterThan(2);
    expect(result.packsRepacked).toBeGreaterThan(0);
    expect(result.packsWritten).toBeGreaterThan(0);
    const after = await folderBytes(repoDir);
    expect(after).toBeLessThan(before * 0.75);
    console.log(`prune: ${before} → ${after} bytes`, JSON.stringify(result));

    await restic(repoDir, ['check', '--read-data']);
    const listed = JSON.parse(await restic(repoDir, ['snapshots', '--json'])) as { id: string }[];
    expect(listed.map((s) => s.id).sort()).toEqual([snaps[2]!.id, snaps[3]!.id].sort());
    expect(await readdir(path.join(repoDir, 'index'))).toHaveLength(1);
    // Every kept snapshot restores byte for byte, through restic and through us.
    const reopened = await ResticRepository.open(new LocalDestination(repoDir), { password: RESTIC_PASSWORD });
    for (const step of [2, 3]) {
      const theirs = path.join(work, `restic-restored1-${step}`);
      await restic(repoDir, ['restore', snaps[step]!.id, '--target', theirs]);
      expect(await compareTrees(states[step]!, path.join(theirs, 'files', source))).toEqual([]);
      const ours = path.join(work, `restored1-${step}`);
      await restoreSnapshot({ store: reopened, rootTree: snaps[step]!.tree, target: ours, label: 'pruned' });
      expect(await compareTrees(states[step]!, path.join(ours, 'files', source))).toEqual([]);
    }

    // restic, asked to prune what we pruned (with our pack size: it decides what is a small pack), has nothing left to do.
    const theirs = await restic(repoDir, ['prune', '--verbose', '--pack-size', String(PACK / 1024 / 1024)]);
    expect(resticPrunePlan(theirs)).toEqual({ repackBlobs: 0, deleteBlobs: 0 });
    await restic(repoDir, ['check']);
    // And a second prune of ours changes nothing either.
    const again = await prune(reopened, {});
    expect(again).toMatchObject({ packsDeleted: 0, packsRepacked: 0, indexFilesWritten: 0 });
  });

  it('prunes a repository restic wrote and pruned, and restic prunes after us', async () => {
    const source = path.join(work, 'src2');
    const repoDir = path.join(work, 'theirs');
    await restic(repoDir, ['init', '--repository-version', '2']);
    const state2 = path.join(work, 'state2');
    for (let step = 0; step < 3; step++) {
      await makeHistory(source, step);
      await restic(repoDir, ['backup', source]);
    }
    execFileSync('cp', ['-a', source, state2]);
    const ids = (JSON.parse(await restic(repoDir, ['snapshots', '--json'])) as { id: string; time: string }[]).sort((a, b) => a.time.localeCompare(b.time)).map((s) => s.id);
    await restic(repoDir, ['forget', ids[0]!]);
    await restic(repoDir, ['prune']);
    const repo = await ResticRepository.open(new LocalDestination(repoDir), { password: RESTIC_PASSWORD, packSize: PACK });
    await makeHistory(source, 3);
    const ours = await backup(repo, source);
    const result = await prune(repo, { forget: [ids[1]!] });
    expect(result.snapshotsRemoved).toBe(1);
    expect(result.packsDeleted).toBeGreaterThan(0);
    await restic(repoDir, ['check', '--read-data']);
    // restic's own snapshot, still there, restores as it was.
    const expected = path.join(work, 'expected2');
    await restic(repoDir, ['restore', ids[2]!, '--target', expected]);
    expect(await compareTrees(state2, path.join(expected, source))).toEqual([]);
    await restic(repoDir, ['forget', ids[2]!]);
    await restic(repoDir, ['prune']);
    await restic(repoDir, ['check', '--read-data']);
    const restored = path.join(work, 'restored2');
    const reopened = await ResticRepository.open(new LocalDestination(repoDir), { password: RESTIC_PASSWORD });
    await restoreSnapshot({ store: reopened, rootTree: ours.tree, target: restored, label: 'ours' });
    expect(await compareTrees(source, path.join(restored, 'files', source))).toEqual([]);
  });

  it('refuses while restic holds a lock for a backup, and removes nothing', async () => {
    const source = path.join(work, 'src3');
    const repoDir = path.join(work, 'locked');
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: RESTIC_PASSWORD, kdf: TEST_KDF, packSize: PACK });
    await makeHistory(source, 0);
    const first = await backup(repo, source);
    await makeHistory(source, 1);
    await backup(repo, source, first);
    const pwFile = path.join(work, 'pw');
    await writeFile(pwFile, RESTIC_PASSWORD);
    // A restic backup reading its stdin holds its (non-exclusive) lock until the stream ends.
    const child = spawn(RESTIC, ['-r', repoDir, '--no-cache', 'backup', '--stdin', '--stdin-filename', 'dump.sql'], {
      env: { PATH: process.env.PATH, HOME: work, RESTIC_PASSWORD_FILE: pwFile },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    while (!(await readdir(path.join(repoDir, 'locks')).catch(() => [])).length) await new Promise((r) => setTimeout(r, 50));
    const files = async () => (await readdir(repoDir, { recursive: true })).sort();
    const before = await files();
    await expect(prune(repo, { forget: [first.id], lock: { waitBeforeCheckMs: 20 } })).rejects.toMatchObject({
      code: 'E_LOCKED',
      message: expect.stringMatching(new RegExp(`locked by PID ${child.pid} on `)),
    });
    expect(await files()).toEqual(before);
    child.stdin.end('SELECT 1;\n');
    expect(await exited).toBe(0);
    // Once restic is done, the prune runs.
    const result = await prune(repo, { forget: [first.id], lock: { waitBeforeCheckMs: 20 } });
    expect(result.snapshotsRemoved).toBe(1);
    await restic(repoDir, ['check']);
  });

  it('plans without changing anything on a dry run, and refuses an unknown snapshot before removing any', async () => {
    const source = path.join(work, 'src4');
    const repoDir = path.join(work, 'dry');
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: RESTIC_PASSWORD, kdf: TEST_KDF, packSize: PACK });
    await makeHistory(source, 0);
    const first = await backup(repo, source);
    await makeHistory(source, 1);
    await backup(repo, source, first);
    const files = async () => (await readdir(repoDir, { recursive: true })).filter((f) => !f.startsWith('locks')).sort();
    const before = await files();
    const planned = await prune(repo, { forget: [first.id], dryRun: true });
    expect(planned.packsDeleted).toBeGreaterThan(0);
    expect(await files()).toEqual(before);
    await expect(prune(repo, { forget: [first.id, 'f'.repeat(64)] })).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: expect.stringContaining(`no snapshot ${'f'.repeat(64)}; nothing was removed`) });
    expect(await files()).toEqual(before);
  });
});

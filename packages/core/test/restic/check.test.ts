import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { checkData, checkStructure, type CheckFinding } from '../../src/restic/check.js';
import type { IndexJson } from '../../src/restic/index-file.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { restic, saveHandTree, sha, snapshotJson, TEST_KDF } from '../../../../test/helpers/restic.js';

let dir: string;
let repoDir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-restic-check-'));
  repoDir = path.join(dir, 'repo');
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A repository of ours with several data packs, a tree pack, an index and a snapshot. */
async function sampleRepo(): Promise<{ repo: ResticRepository; snapshot: string }> {
  const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: 'pw', kdf: TEST_KDF, packSize: 64 * 1024 });
  const tree = await saveHandTree(repo, 'data', [
    { name: 'random', content: randomBytes(200_000) },
    { name: 'text', content: Buffer.from('some log line\n'.repeat(30_000)) },
  ], 30_000);
  await repo.flush();
  return { repo, snapshot: await repo.saveJson('snapshots', snapshotJson(tree, ['/data'])) };
}

async function reopen(): Promise<ResticRepository> {
  return ResticRepository.open(new LocalDestination(repoDir), { password: 'pw' });
}

async function packFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const sub of await fsp.readdir(path.join(repoDir, 'data'))) {
    for (const f of await fsp.readdir(path.join(repoDir, 'data', sub))) out.push(`data/${sub}/${f}`);
  }
  return out;
}

/** The largest pack: a data pack with several blobs. */
async function largestPack(): Promise<string> {
  const sizes = await Promise.all((await packFiles()).map(async (p) => [p, (await fsp.stat(path.join(repoDir, p))).size] as const));
  return sizes.sort((a, b) => b[1] - a[1])[0]![0];
}

const errors = (findings: CheckFinding[]) => findings.filter((f) => f.severity === 'error');

describe('structure and read-data checks', () => {
  it('find nothing wrong in a sound repository of ours, nor in one restic wrote', async () => {
    const { repo } = await sampleRepo();
    const structure = await checkStructure(repo);
    expect(structure.findings).toEqual([]);
    expect(structure.packs).toBe((await packFiles()).length);
    expect(structure.blobs).toBe(repo.blobCount);
    const data = await checkData(repo);
    expect(data).toMatchObject({ findings: [], packsRead: structure.packs, blobs: repo.blobCount });

    const theirs = path.join(dir, 'theirs');
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'f'), randomBytes(1_500_000));
    expect((await restic(theirs, 'pw', ['init'])).code).toBe(0);
    expect((await restic(theirs, 'pw', ['backup', src])).code).toBe(0);
    const r = await ResticRepository.open(new LocalDestination(theirs), { password: 'pw' });
    expect((await checkStructure(r)).findings).toEqual([]);
    expect((await checkData(r)).findings).toEqual([]);
  });

  it('reads about the asked share of packs', async () => {
    const { repo } = await sampleRepo();
    const all = (await checkStructure(repo)).packs;
    expect((await checkData(repo, { share: 0.5 })).packsRead).toBe(Math.round(all / 2));
    expect((await checkData(repo, { share: 0.0001 })).packsRead).toBe(1);
    expect((await checkData(repo, { share: 0 })).packsRead).toBe(0);
  });

  it('names a pack with a flipped byte and each blob it damaged (read-data), as restic check does', async () => {
    await sampleRepo();
    const pack = await largestPack();
    const file = path.join(repoDir, pack);
    const bytes = await fsp.readFile(file);
    bytes[100]! ^= 0x01;
    await fsp.writeFile(file, bytes);
    const repo = await reopen();
    expect(errors((await checkStructure(repo)).findings)).toEqual([]);
    const found = errors((await checkData(repo)).findings);
    expect(found).toContainEqual({ object: pack, problem: expect.stringMatching(/^its content hashes to [0-9a-f]{64}, not to its name/), severity: 'error' });
    expect(found).toContainEqual({
      object: expect.stringMatching(new RegExp(`^data blob [0-9a-f]{64} in ${pack}$`)),
      problem: expect.stringContaining('the MAC does not match'),
      severity: 'error',
    });
    expect(found).toHaveLength(2);
    const theirs = await restic(repoDir, 'pw', ['check', '--read-data']);
    expect(theirs.code).not.toBe(0);
  });

  it('names a truncated pack and a deleted one (structure)', async () => {
    await sampleRepo();
    const [a, b] = await packFiles();
    const stat = await fsp.stat(path.join(repoDir, a!));
    await fsp.truncate(path.join(repoDir, a!), stat.size - 7);
    await fsp.rm(path.join(repoDir, b!));
    const found = errors((await checkStructure(await reopen())).findings);
    expect(found).toEqual(
      expect.arrayContaining([
        { object: a, problem: expect.stringMatching(new RegExp(`^is ${stat.size - 7} bytes, index/[0-9a-f]{64} implies ${stat.size} `)), severity: 'error' },
        { object: b, problem: expect.stringMatching(/^is missing, but index\/[0-9a-f]{64} names it/), severity: 'error' },
      ]),
    );
    expect(found).toHaveLength(2);
  });

  it('names an edited index file, whether or not it was renamed to its new hash', async () => {
    await sampleRepo();
    const [name] = await fsp.readdir(path.join(repoDir, 'index'));
    const file = path.join(repoDir, 'index', name!);
    const bytes = await fsp.readFile(file);
    bytes[bytes.length - 20]! ^= 0x04;
    await fsp.writeFile(file, bytes);
    const repo = await reopen().catch((e: unknown) => e);
    // Opening loads the index: it refuses the edited file by name.
    expect(repo).toMatchObject({ code: 'E_INTEGRITY', message: expect.stringContaining(`index/${name}: its content does not hash to its name`) });

    // A check opens without the index, and reports it as a finding.
    const unindexed = await ResticRepository.open(new LocalDestination(repoDir), { password: 'pw', loadIndex: false });
    expect((await checkStructure(unindexed)).findings).toContainEqual({
      object: `index/${name}`,
      problem: 'its content does not hash to its name (the file was altered or truncated)',
      severity: 'error',
    });

    await fsp.rename(file, path.join(repoDir, 'index', sha(bytes)));
    const found = errors((await checkStructure(unindexed)).findings);
    expect(found[0]).toEqual({ object: `index/${sha(bytes)}`, problem: expect.stringContaining('the MAC does not match'), severity: 'error' });
    // Its packs are now in no index: warnings, not errors.
    expect(found).toHaveLength(1);
  });

  it('names an index that disagrees with a pack header, an altered snapshot file, and a pack no index names', async () => {
    const { repo, snapshot } = await sampleRepo();
    const [indexId] = await repo.list('index');
    const index = await repo.loadIndexFile(indexId!);
    const edited: IndexJson = JSON.parse(JSON.stringify(index));
    const pack = edited.packs.find((p) => p.blobs.length > 1)!;
    [pack.blobs[0]!.id, pack.blobs[1]!.id] = [pack.blobs[1]!.id, pack.blobs[0]!.id];
    await repo.saveJson('index', edited);
    await repo.remove('index', indexId!);

    const snapFile = path.join(repoDir, 'snapshots', snapshot);
    const snapBytes = await fsp.readFile(snapFile);
    snapBytes[50]! ^= 0x80;
    await fsp.writeFile(snapFile, snapBytes);

    const orphan = await ResticRepository.open(new LocalDestination(repoDir), { password: 'pw', packSize: 4096 }).catch(() => undefined);
    const extra = randomBytes(5000);
    const before = await orphan!.list('index');
    await orphan!.save('data', sha(extra), extra);
    await orphan!.flush();
    const [newest] = (await orphan!.list('index')).filter((id) => !before.includes(id));
    // Drop the index naming the new pack: the pack is now in no index.
    const names = (await orphan!.loadIndexFile(newest!)).packs.map((p) => p.id);
    expect(names).toHaveLength(1);
    await orphan!.remove('index', newest!);

    const found = (await checkStructure(await reopen())).findings;
    const key = `data/${pack.id.slice(0, 2)}/${pack.id}`;
    expect(found).toContainEqual({ object: key, problem: expect.stringMatching(/^index\/[0-9a-f]{64} lists data [0-9a-f]{64} @0\+/), severity: 'error' });
    expect(found).toContainEqual({ object: key, problem: expect.stringMatching(/^its header lists data/), severity: 'error' });
    expect(found).toContainEqual({ object: `snapshots/${snapshot}`, problem: 'its content does not hash to its name (the file was altered or truncated)', severity: 'error' });
    expect(found).toContainEqual({ object: `data/${names[0]!.slice(0, 2)}/${names[0]}`, problem: expect.stringContaining('is in no index'), severity: 'warning' });
  });
});

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { sha, TEST_KDF } from '../../../../test/helpers/restic.js';
import { RESTIC_PASSWORD, restic } from './restic-cli.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-index-open-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Two blobs in two packs, one index file naming both. */
async function twoPacks() {
  const dest = new LocalDestination(dir);
  const repo = await ResticRepository.init(dest, { password: RESTIC_PASSWORD, kdf: TEST_KDF, packSize: 4096 });
  const x = randomBytes(6000);
  const y = randomBytes(6000);
  await repo.save('data', sha(x), x);
  await repo.save('data', sha(y), y);
  await repo.flush();
  const [old] = await repo.list('index');
  return { dest, repo, x, y, old: old!, packX: repo.packOf('data', sha(x))!, packY: repo.packOf('data', sha(y))! };
}

describe('opening a repository', () => {
  it('leaves out index files another one supersedes, as an interrupted prune leaves them', async () => {
    const { dest, repo, x, y, old, packY } = await twoPacks();
    const file = await repo.loadIndexFile(old);
    // The prune's new index: x's pack dropped, naming the old file as replaced.
    const replacement = await repo.saveJson('index', { supersedes: [old], packs: file.packs.filter((p) => p.id === packY) });
    const reopened = await ResticRepository.open(dest, { password: RESTIC_PASSWORD });
    expect(reopened.loadedIndex).toEqual({ ids: [old, replacement].sort(), superseded: [old] });
    expect(reopened.has('data', sha(y))).toBe(true);
    expect(reopened.has('data', sha(x))).toBe(false);
    expect((await reopened.load('data', sha(y))).equals(y)).toBe(true);
    // Stock restic reads the same state (it merges both files) and finds it sound.
    await restic(dir, ['check', '--read-data']);
    expect(await reopened.list('index')).toEqual([old, replacement].sort());
  });

  it('loads every index file when none is superseded', async () => {
    const { dest, x, y, old } = await twoPacks();
    const reopened = await ResticRepository.open(dest, { password: RESTIC_PASSWORD });
    expect(reopened.loadedIndex).toEqual({ ids: [old], superseded: [] });
    expect(reopened.has('data', sha(x)) && reopened.has('data', sha(y))).toBe(true);
  });

  it('derives a key once per process and password: the same key files open again without scrypt, a wrong password still fails', async () => {
    const { dest, repo } = await twoPacks();
    const copy = path.join(dir, 'copy');
    await fsp.mkdir(copy);
    for (const name of ['config', 'keys', 'index', 'data']) await fsp.cp(path.join(dir, name), path.join(copy, name), { recursive: true });
    const a = await ResticRepository.open(dest, { password: RESTIC_PASSWORD });
    // A copy of the repository (replication) has the same key files: the same key object comes back.
    const b = await ResticRepository.open(new LocalDestination(copy), { password: RESTIC_PASSWORD });
    expect(a.masterKey.toJson()).toEqual(repo.masterKey.toJson());
    expect(b.masterKey).toBe(a.masterKey);
    expect(b.blobCount).toBe(2);
    await expect(ResticRepository.open(dest, { password: `${RESTIC_PASSWORD}x` })).rejects.toMatchObject({ code: 'E_AUTH' });
    await expect(ResticRepository.open(dest, { password: RESTIC_PASSWORD.slice(0, -1) })).rejects.toMatchObject({ code: 'E_AUTH' });
  });
});

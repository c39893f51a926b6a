import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { nodeAt, restic, saveHandTree, sha, snapshotJson, TEST_KDF } from '../../../../test/helpers/restic.js';

/** Stock restic 0.14 (Debian 12's) against repositories we write, and the other way round. */

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-restic-interop-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function sampleFiles() {
  return [
    { name: 'app.log', content: Buffer.from(Array.from({ length: 20_000 }, (_, i) => `2024-05-06 line ${i} ok\n`).join('')) },
    { name: 'model.bin', content: randomBytes(300_000) },
    { name: 'empty', content: Buffer.alloc(0) },
  ];
}

describe('stock restic reads what ResticRepository writes', () => {
  it('passes restic check --read-data, lists the snapshot, and restores the files byte for byte', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: 'pw', kdf: TEST_KDF, packSize: 128 * 1024 });
    const files = sampleFiles();
    const tree = await saveHandTree(repo, 'data', files, 50_000);
    await repo.flush();
    const snapshot = await repo.saveJson('snapshots', snapshotJson(tree, ['/data']));

    const check = await restic(repoDir, 'pw', ['check', '--read-data']);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('no errors were found');

    const list = await restic(repoDir, 'pw', ['snapshots', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ id: snapshot, tree, paths: ['/data'], hostname: 'test-host', tags: ['sutazai'] }]);

    const target = path.join(dir, 'restored');
    const restore = await restic(repoDir, 'pw', ['restore', 'latest', '--target', target]);
    expect(restore.code).toBe(0);
    for (const f of files) expect(sha(await fsp.readFile(path.join(target, 'data', f.name)))).toBe(sha(f.content));
  });

  it('writes packs of hundreds of small blobs whose headers restic reads (beyond its first read of 15 entries)', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: 'pw', kdf: TEST_KDF });
    const files = Array.from({ length: 300 }, (_, i) => ({ name: `config-${String(i).padStart(3, '0')}.yaml`, content: Buffer.from(`replica: ${i}\n${randomBytes(8).toString('hex')}\n`) }));
    const tree = await saveHandTree(repo, 'configs', files);
    await repo.flush();
    await repo.saveJson('snapshots', snapshotJson(tree, ['/configs']));
    expect((await fsp.readdir(path.join(repoDir, 'index')))).toHaveLength(1);
    const check = await restic(repoDir, 'pw', ['check', '--read-data']);
    expect(check.stdout).toContain('no errors were found');
    const ls = await restic(repoDir, 'pw', ['ls', 'latest']);
    expect(ls.stdout.split('\n').filter((l) => l.startsWith('/configs/config-'))).toHaveLength(300);
  });

  it('takes further snapshots from restic into the repository, which we then read', async () => {
    const repoDir = path.join(dir, 'repo');
    const ours = await ResticRepository.init(new LocalDestination(repoDir), { password: 'pw', kdf: TEST_KDF });
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'notes.txt'), 'written by restic\n'.repeat(1000));
    expect((await restic(repoDir, 'pw', ['backup', src])).code).toBe(0);
    const again = await ResticRepository.open(new LocalDestination(repoDir), { password: 'pw' });
    const [id] = await again.list('snapshots');
    const snap = await again.loadJson<{ tree: string; paths: string[] }>('snapshots', id!);
    expect(snap.paths).toEqual([src]);
    expect(await nodeAt(again, snap.tree, path.join(src, 'notes.txt'))).toMatchObject({ name: 'notes.txt', type: 'file' });
    expect(again.config).toEqual(ours.config);
  });
});

describe('ResticRepository reads what stock restic writes', () => {
  it('opens a repository made by restic init + restic backup: every blob in every index loads and hashes', async () => {
    const repoDir = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(src, 'big'), randomBytes(3 * 1024 * 1024));
    await fsp.writeFile(path.join(src, 'sub', 'text'), 'hello restic\n'.repeat(50_000));
    expect((await restic(repoDir, 'pw', ['init'])).code).toBe(0);
    expect((await restic(repoDir, 'pw', ['backup', src])).code).toBe(0);
    const config = JSON.parse((await restic(repoDir, 'pw', ['cat', 'config'])).stdout);

    const repo = await ResticRepository.open(new LocalDestination(repoDir), { password: 'pw' });
    expect(repo.config).toEqual({ version: 2, id: config.id, chunkerPolynomial: config.chunker_polynomial });
    let blobs = 0;
    for (const id of await repo.list('index')) {
      for (const pack of (await repo.loadIndexFile(id)).packs) {
        for (const b of pack.blobs) {
          const plain = await repo.load(b.type, b.id);
          expect(sha(plain)).toBe(b.id);
          expect(repo.plaintextSize(b.type, b.id)).toBe(plain.length);
          blobs++;
        }
      }
    }
    expect(blobs).toBe(repo.blobCount);
    expect(blobs).toBeGreaterThan(4);
    const [snapId] = await repo.list('snapshots');
    const snap = await repo.loadJson<{ tree: string; paths: string[] }>('snapshots', snapId!);
    expect(snap.paths).toEqual([src]);
  });

  it('refuses a wrong password for a restic-made repository with E_AUTH and no stack', async () => {
    const repoDir = path.join(dir, 'repo');
    expect((await restic(repoDir, 'correct horse', ['init'])).code).toBe(0);
    const err = (await ResticRepository.open(new LocalDestination(repoDir), { password: 'battery staple' }).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'E_AUTH', message: `local:${repoDir}: wrong password: it opens none of the repository's 1 key` });
  });
});

import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { Archiver } from '../../src/restic/archiver.js';
import { FastCdcChunker } from '../../src/restic/fastcdc.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { restoreSnapshot } from '../../src/restic/restorer.js';
import { fileStream, findPath } from '../../src/restic/walk.js';
import { TEST_KDF } from '../../../../test/helpers/restic.js';
import { compareTrees } from './fixture.js';

/** A local folder that records every ranged read of a data pack. */
class CountingDestination extends LocalDestination {
  reads: { key: string; length: number }[] = [];
  override async getRange(key: string, offset: number, length: number): Promise<Readable> {
    if (key.startsWith('data/')) this.reads.push({ key, length });
    return super.getRange(key, offset, length);
  }
}

describe('restoring from packs', () => {
  let work: string;
  let source: string;
  let repoDir: string;
  let tree: string;
  let dataPacks: Map<string, number>;
  let dataBlobs: number;

  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'restore-packs-')));
    source = path.join(work, 'src');
    // 300 small files (one blob each), a few of several blobs, and copies.
    for (let d = 0; d < 6; d++) {
      await mkdir(path.join(source, `d${d}`), { recursive: true });
      for (let f = 0; f < 50; f++) await writeFile(path.join(source, `d${d}`, `f${f}`), randomBytes(5_000 + ((d * 50 + f) * 311) % 60_000));
    }
    const big = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(path.join(source, 'big'), big);
    await writeFile(path.join(source, 'big-copy'), big);
    await writeFile(path.join(source, 'twice'), Buffer.concat([big.subarray(0, 2_000_000), big.subarray(0, 2_000_000)]));
    await writeFile(path.join(source, 'empty'), '');
    repoDir = path.join(work, 'repo');
    const repo = await ResticRepository.init(new LocalDestination(repoDir), { password: 'pw', kdf: TEST_KDF, packSize: 256 * 1024 });
    const archiver = new Archiver({ store: repo, chunker: () => new FastCdcChunker(repo.config.chunkerPolynomial) });
    await archiver.addTree('files', [source]);
    tree = await archiver.finish();
    await repo.flush();
    dataBlobs = archiver.stats.dataBlobs;
    dataPacks = new Map();
    for (const file of await repo.list('index')) {
      for (const pack of (await repo.loadIndexFile(file)).packs) {
        if (pack.blobs[0]?.type === 'data') dataPacks.set(`data/${pack.id.slice(0, 2)}/${pack.id}`, (await lstat(path.join(repoDir, 'data', pack.id.slice(0, 2), pack.id))).size);
      }
    }
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it.each([true, false])('reads each data pack in a few ranges, not blob by blob, and restores byte for byte (crypto threads: %s)', async (cryptoThreads) => {
    const destination = new CountingDestination(repoDir);
    const repo = await ResticRepository.open(destination, { password: 'pw', cryptoThreads });
    const target = path.join(work, `restored-${cryptoThreads}`);
    const stats = await restoreSnapshot({ store: repo, rootTree: tree, target, label: 'test' });
    expect(stats.files).toBe(304);
    expect(await compareTrees(source, path.join(target, 'files', source))).toEqual([]);
    // Tree packs are read blob by blob as the trees are walked; data packs are what this is about.
    const reads = destination.reads.filter((r) => dataPacks.has(r.key));
    const bytes = reads.reduce((n, r) => n + r.length, 0);
    const total = [...dataPacks.values()].reduce((a, b) => a + b, 0);
    console.log(`${dataBlobs} data blobs in ${dataPacks.size} packs: ${reads.length} ranged reads, ${bytes} of ${total} bytes`);
    expect(dataBlobs).toBeGreaterThan(300);
    // One batch here: each pack is read once, in ranges that skip only large gaps.
    expect(new Set(reads.map((r) => r.key)).size).toBe(reads.length);
    expect(reads.length).toBeLessThanOrEqual(dataPacks.size);
    expect(reads.length).toBeLessThan(dataBlobs / 2);
    expect(bytes).toBeLessThanOrEqual(total);
  });

  it('streams a file of many blobs in windows, each pack read once per window', async () => {
    const dir = path.join(work, 'stream');
    const destination = new CountingDestination(dir);
    const repo = await ResticRepository.init(destination, { password: 'pw', kdf: TEST_KDF });
    const dump = randomBytes(12 * 1024 * 1024);
    const archiver = new Archiver({ store: repo, chunker: () => new FastCdcChunker(repo.config.chunkerPolynomial) });
    await archiver.addStream('db', 'dump.sql', Readable.from([dump]));
    const root = await archiver.finish();
    await repo.flush();
    const node = (await findPath(repo, root, '/db/dump.sql')).at(-1)!;
    const packs = new Set(node.content!.map((id) => repo.packOf('data', id)));
    expect(node.content!.length).toBeGreaterThan(4);
    expect(packs.size).toBe(1);
    destination.reads = [];
    expect((await buffer(fileStream(repo, node))).equals(dump)).toBe(true);
    expect(destination.reads.filter((r) => !r.key.includes(repo.packOf('tree', root)!))).toHaveLength(1);
    destination.reads = [];
    // Windows of ~4 MiB: three or four reads of the same pack, never one per blob.
    expect((await buffer(fileStream(repo, node, { windowBytes: 4 * 1024 * 1024 }))).equals(dump)).toBe(true);
    expect(destination.reads.length).toBeLessThan(node.content!.length);
  });

  it('fails on a damaged blob, naming it, and leaves nothing behind', async () => {
    const copy = path.join(work, 'damaged');
    await import('node:fs/promises').then((f) => f.cp(repoDir, copy, { recursive: true }));
    const [key, size] = [...dataPacks].find(([, s]) => s > 100_000)!;
    const file = path.join(copy, key);
    const bytes = await readFile(file);
    bytes[Math.floor(size / 3)]! ^= 1;
    await writeFile(file, bytes);
    const repo = await ResticRepository.open(new LocalDestination(copy), { password: 'pw' });
    const target = path.join(work, 'restored-damaged');
    await expect(restoreSnapshot({ store: repo, rootTree: tree, target, label: 'test' })).rejects.toMatchObject({
      code: 'E_INTEGRITY',
      message: expect.stringMatching(new RegExp(`data blob [0-9a-f]{64} in ${key}: the MAC does not match`)),
    });
    await expect(lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { BlobIndex, PackList } from '../../src/restic/blob-index.js';
import { CryptoPool } from '../../src/restic/crypto-pool.js';
import { MasterKey } from '../../src/restic/crypto.js';
import type { FillIv } from '../../src/restic/pack.js';
import { PackWriter } from '../../src/restic/pack-writer.js';
import { ResticRepository } from '../../src/restic/repository.js';
import type { BlobType } from '../../src/restic/store.js';
import { sha, TEST_KDF } from '../../../../test/helpers/restic.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-pack-writer-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** IVs from a counter per kind (blobs in the order added, headers in the order packs end). */
function countingIvs(): FillIv {
  const next = { blob: 0, header: 0 };
  return (iv, kind) => {
    iv.fill(kind === 'blob' ? 0 : 0xff);
    iv.writeUInt32BE(next[kind]++, 12);
  };
}

/** Blobs of every kind a pack meets: compressible text, random bytes, empty, trees, one larger than a staging buffer. */
function blobs(): { type: BlobType; data: Buffer }[] {
  const out: { type: BlobType; data: Buffer }[] = [];
  for (let i = 0; i < 60; i++) {
    const data = i % 3 === 0 ? Buffer.from(`line ${i} of a log\n`.repeat(3000 + i)) : randomBytes(20_000 + i * 997);
    out.push({ type: i % 7 === 3 ? 'tree' : 'data', data });
  }
  out.push({ type: 'data', data: Buffer.alloc(0) });
  out.push({ type: 'data', data: randomBytes(3 * 1024 * 1024 + 5) });
  return out;
}

async function writeAll(sub: string, key: MasterKey, pool: CryptoPool | undefined, input: { type: BlobType; data: Buffer }[]) {
  const destination = new LocalDestination(path.join(dir, sub));
  const index = new BlobIndex();
  const writer = new PackWriter({ key, destination, index, packs: new PackList(), packSize: 256 * 1024, uploads: 2, compress: true, pool, fillIv: countingIvs() });
  for (const { type, data } of input) {
    const id = createHash('sha256').update(data).digest();
    if (!index.has(type, id)) await writer.add(type, id, data);
  }
  const stored = await writer.flush();
  const files = new Map<string, Buffer>();
  for (const o of await destination.list('data/')) files.set(o.key, await fsp.readFile(path.join(dir, sub, o.key)));
  return { stored, files };
}

describe('PackWriter on crypto threads', () => {
  it('writes the very packs (names, bytes, blob order) the calling thread writes, given the same IVs', async () => {
    const pool = CryptoPool.shared();
    expect(pool, 'the crypto thread module is built and this machine has two cores').toBeDefined();
    const key = MasterKey.random();
    const input = blobs();
    const single = await writeAll('single', key, undefined, input);
    const threaded = await writeAll('threaded', key, pool, input);
    expect(single.files.size).toBeGreaterThan(5);
    expect([...threaded.files.keys()].sort()).toEqual([...single.files.keys()].sort());
    for (const [name, bytes] of single.files) expect(threaded.files.get(name)!.equals(bytes), name).toBe(true);
    const entries = (s: typeof single) => [...s.stored].sort((a, b) => a.id.localeCompare(b.id)).map((p) => ({ id: p.id, blobs: p.blobs.map((b) => [b.type, b.id.toString('hex'), b.offset, b.length, b.uncompressedLength]) }));
    expect(entries(threaded)).toEqual(entries(single));
  });

  it('knows a blob from the moment it is saved: a second save is a no-op, and it loads while being sealed', async () => {
    const repo = await ResticRepository.init(new LocalDestination(dir), { password: 'pw', kdf: TEST_KDF, packSize: 64 * 1024 });
    const b = Buffer.from('a blob saved twice at once\n'.repeat(5000));
    const id = sha(b);
    const saves = [repo.save('data', id, b), repo.save('data', id, b)];
    expect(repo.has('data', id)).toBe(true);
    expect(repo.plaintextSize('data', id)).toBe(b.length);
    const loaded = repo.load('data', id);
    await Promise.all(saves);
    expect((await loaded).equals(b)).toBe(true);
    await repo.flush();
    expect(repo.packOf('data', id)).toMatch(/^[0-9a-f]{64}$/);
    expect(repo.blobCount).toBe(1);
    const again = await ResticRepository.open(new LocalDestination(dir), { password: 'pw' });
    expect((await again.load('data', id)).equals(b)).toBe(true);
  });

  it('reports a blob the crypto thread cannot seal, and fails the flush instead of writing a pack without it', async () => {
    const pool = CryptoPool.shared()!;
    const key = MasterKey.random();
    const index = new BlobIndex();
    const failing = { size: pool.size, seal: () => Promise.reject(new Error('the crypto thread ran out of memory')) } as unknown as CryptoPool;
    const writer = new PackWriter({ key, destination: new LocalDestination(dir), index, packs: new PackList(), packSize: 64 * 1024, uploads: 2, compress: true, pool: failing });
    const b = randomBytes(1000);
    await writer.add('data', createHash('sha256').update(b).digest(), b);
    await expect(writer.flush()).rejects.toThrow(/sealing a blob failed: the crypto thread ran out of memory/);
    expect(await fsp.readdir(dir)).toEqual([]);
  });
});

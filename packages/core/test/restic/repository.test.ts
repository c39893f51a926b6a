import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { getRange, LocalDestination, PrefixedDestination, type Destination, type PutInfo } from '../../src/destination.js';
import { BackupError } from '../../src/errors.js';
import { CryptoPool } from '../../src/restic/crypto-pool.js';
import { readAll, ResticRepository } from '../../src/restic/repository.js';
import { sha, TEST_KDF } from '../../../../test/helpers/restic.js';


let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-restic-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function files(sub: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(path.join(d, e.name));
      else out.push(path.relative(dir, path.join(d, e.name)));
    }
  };
  await walk(path.join(dir, sub));
  return out.sort();
}

describe('ResticRepository on a local folder', () => {
  it('stores blobs in packs named by their hash, indexes them on flush, and loads them after reopening', async () => {
    const dest = new LocalDestination(dir);
    const repo = await ResticRepository.init(dest, { password: 'pw', kdf: TEST_KDF, packSize: 64 * 1024 });
    const blobs = Array.from({ length: 30 }, (_, i) => (i % 2 ? randomBytes(10_000 + i) : Buffer.from(`text ${i}\n`.repeat(2000))));
    for (const b of blobs) await repo.save('data', sha(b), b);
    const tree = Buffer.from('{"nodes":[]}\n');
    await repo.save('tree', sha(tree), tree);
    expect(repo.has('data', sha(blobs[29]!))).toBe(true);
    // Before flush: the last pack is only in memory, and still loads.
    expect((await repo.load('data', sha(blobs[29]!))).equals(blobs[29]!)).toBe(true);
    expect(await files('index')).toEqual([]);
    await repo.flush();

    const packs = await files('data');
    expect(packs.length).toBeGreaterThan(2);
    for (const p of packs) {
      const name = path.basename(p);
      expect(p).toBe(`data/${name.slice(0, 2)}/${name}`);
      expect(sha(await fsp.readFile(path.join(dir, p)))).toBe(name);
    }
    expect(await files('index')).toHaveLength(1);

    const again = await ResticRepository.open(dest, { password: 'pw' });
    expect(again.config).toEqual(repo.config);
    expect(again.blobCount).toBe(31);
    for (const b of blobs) expect((await again.load('data', sha(b))).equals(b)).toBe(true);
    expect(again.plaintextSize('data', sha(blobs[0]!))).toBe(blobs[0]!.length);
    expect(again.plaintextSize('data', sha(blobs[1]!))).toBe(blobs[1]!.length);
    expect(again.plaintextSize('tree', sha(blobs[1]!))).toBeUndefined();
    expect((await again.load('tree', sha(tree))).toString()).toBe('{"nodes":[]}\n');
    await expect(again.load('data', sha(Buffer.from('never stored')))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('does not store a blob twice, within a run or across runs', async () => {
    const dest = new LocalDestination(dir);
    const repo = await ResticRepository.init(dest, { password: 'pw', kdf: TEST_KDF });
    const b = randomBytes(5000);
    await repo.save('data', sha(b), b);
    await repo.save('data', sha(b), b);
    await expect(repo.save('data', 'not-an-id', b)).rejects.toMatchObject({ code: 'E_INTERNAL', message: 'not a blob id: "not-an-id"' });
    await repo.flush();
    const again = await ResticRepository.open(dest, { password: 'pw' });
    await again.save('data', sha(b), b);
    await again.flush();
    expect(await files('data')).toHaveLength(1);
    expect(await files('index')).toHaveLength(1);
  });

  it('refuses a wrong password with E_AUTH naming the repository, and a folder without a repository with E_NOT_FOUND', async () => {
    const dest = new LocalDestination(dir);
    await ResticRepository.init(dest, { password: 'right', kdf: TEST_KDF });
    const err = await ResticRepository.open(dest, { password: 'wrong' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect(err).toMatchObject({ code: 'E_AUTH', message: `local:${dir}: wrong password: it opens none of the repository's 1 key` });
    expect((err as Error).message).not.toContain('right');
    await expect(ResticRepository.open(new LocalDestination(path.join(dir, 'none')), { password: 'x' })).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
      message: expect.stringContaining('holds no restic repository'),
    });
    await expect(ResticRepository.init(dest, { password: 'x', kdf: TEST_KDF })).rejects.toThrow(/already holds a repository/);
  });

  it('opens with any of its keys', async () => {
    const dest = new LocalDestination(dir);
    const repo = await ResticRepository.init(dest, { password: 'first', kdf: TEST_KDF });
    await repo.addKey('second', TEST_KDF);
    expect((await ResticRepository.open(dest, { password: 'second' })).config.id).toBe(repo.config.id);
    expect((await ResticRepository.open(dest, { password: 'first' })).config.id).toBe(repo.config.id);
  });

  it('stores JSON files compressed under their hash, and names an altered one', async () => {
    const dest = new LocalDestination(dir);
    const repo = await ResticRepository.init(dest, { password: 'pw', kdf: TEST_KDF });
    const value = { time: '2024-01-01T00:00:00Z', paths: Array.from({ length: 200 }, (_, i) => `/same/prefix/${i}`) };
    const id = await repo.saveJson('snapshots', value);
    expect(await repo.list('snapshots')).toEqual([id]);
    const bytes = await fsp.readFile(path.join(dir, 'snapshots', id));
    expect(sha(bytes)).toBe(id);
    expect(bytes.length).toBeLessThan(JSON.stringify(value).length / 2);
    expect(repo.masterKey.open(bytes, 'x')[0]).toBe(2);
    expect(await repo.loadJson('snapshots', id)).toEqual(value);
    bytes[40]! ^= 1;
    await fsp.chmod(path.join(dir, 'snapshots', id), 0o600);
    await fsp.writeFile(path.join(dir, 'snapshots', id), bytes);
    await expect(repo.loadJson('snapshots', id)).rejects.toThrow(`snapshots/${id}: its content does not hash to its name`);
    await repo.remove('snapshots', id);
    expect(await repo.list('snapshots')).toEqual([]);
  });

  it.each([
    // On the calling thread, the third blob (the third full pack) waits for an upload.
    { threads: false, bound: 1 },
    // On crypto threads, blobs also wait in the few staging buffers (two per thread and one).
    { threads: true, bound: 2 + CryptoPool.shared()!.size * 2 + 1 },
  ])('holds at most `uploads` packs in flight: save waits while the destination is slow (crypto threads: $threads)', async ({ threads, bound }) => {
    const gate = new GatedDestination(dir);
    const repo = await ResticRepository.init(gate, { password: 'pw', kdf: TEST_KDF, packSize: 8192, uploads: 2, cryptoThreads: threads });
    gate.closed = true;
    let saved = 0;
    const saving = (async () => {
      for (let i = 0; i < 20; i++) {
        const b = randomBytes(9000);
        await repo.save('data', sha(b), b);
        saved++;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    expect(gate.waiting).toBe(2);
    expect(saved).toBe(bound);
    await new Promise((r) => setTimeout(r, 200));
    expect(saved).toBe(bound);
    gate.release();
    await saving;
    await repo.flush();
    expect(await files('data')).toHaveLength(20);
  });

  it('fails save and flush after a pack upload fails, and writes no index naming the lost pack', async () => {
    const gate = new GatedDestination(dir);
    const repo = await ResticRepository.init(gate, { password: 'pw', kdf: TEST_KDF, packSize: 8192 });
    gate.fail = new BackupError('E_DESTINATION', 'disk full');
    const b = randomBytes(9000);
    await repo.save('data', sha(b), b);
    const c = randomBytes(100);
    await expect(repo.flush()).rejects.toThrow('disk full');
    await expect(repo.save('data', sha(c), c)).rejects.toThrow('disk full');
    expect(await files('index')).toEqual([]);
  });

  it('reads only the blob range from the destination', async () => {
    const counting = new GatedDestination(dir);
    const repo = await ResticRepository.init(counting, { password: 'pw', kdf: TEST_KDF });
    const blobs = Array.from({ length: 8 }, () => randomBytes(100_000));
    for (const b of blobs) await repo.save('data', sha(b), b);
    await repo.flush();
    const again = await ResticRepository.open(counting, { password: 'pw' });
    counting.rangeBytes = 0;
    expect((await again.load('data', sha(blobs[5]!))).equals(blobs[5]!)).toBe(true);
    expect(counting.rangeBytes).toBe(100_000 + 32);
  });

  it('loads blobs through a destination without getRange, skipping to the blob', async () => {
    const local = new LocalDestination(dir);
    const plain: Destination = {
      description: 'plain',
      put: (k, b, i) => local.put(k, b, i),
      get: (k) => local.get(k),
      list: (p) => local.list(p),
      delete: (k) => local.delete(k),
      stat: (k) => local.stat(k),
    };
    const repo = await ResticRepository.init(plain, { password: 'pw', kdf: TEST_KDF });
    const blobs = Array.from({ length: 40 }, () => randomBytes(50_000));
    for (const b of blobs) await repo.save('data', sha(b), b);
    await repo.flush();
    const again = await ResticRepository.open(plain, { password: 'pw' });
    for (const i of [0, 17, 39]) expect((await again.load('data', sha(blobs[i]!))).equals(blobs[i]!)).toBe(true);
  });
});

/** A local folder whose uploads can be held back or failed, and which counts ranged reads. */
class GatedDestination extends LocalDestination {
  closed = false;
  fail: Error | undefined;
  waiting = 0;
  rangeBytes = 0;
  #release: (() => void)[] = [];

  release(): void {
    this.closed = false;
    for (const r of this.#release.splice(0)) r();
  }

  override async put(key: string, body: Readable, info?: PutInfo): Promise<void> {
    if (key.startsWith('data/')) {
      if (this.fail) throw this.fail;
      if (this.closed) {
        this.waiting++;
        await new Promise<void>((r) => this.#release.push(r));
        this.waiting--;
      }
    }
    return super.put(key, body, info);
  }

  override async getRange(key: string, offset: number, length: number): Promise<Readable> {
    this.rangeBytes += length;
    return super.getRange(key, offset, length);
  }
}

describe('getRange', () => {
  it('reads byte ranges from a local folder, and through get when a destination lacks getRange', async () => {
    const local = new LocalDestination(dir);
    const body = randomBytes(2 * 1024 * 1024 + 3);
    await local.put('ranges/object', Readable.from([body]));
    const withoutRange: Destination = { description: 'plain', put: local.put.bind(local), get: local.get.bind(local), list: local.list.bind(local), delete: local.delete.bind(local), stat: local.stat.bind(local) };
    for (const dest of [local, new PrefixedDestination(local, 'ranges'), new PrefixedDestination(withoutRange, 'ranges')]) {
      const key = dest instanceof PrefixedDestination ? 'object' : 'ranges/object';
      const range = async (offset: number, length: number) => readAll(await getRange(dest, key, offset, length));
      expect((await range(0, 10)).equals(body.subarray(0, 10))).toBe(true);
      expect((await range(1_000_003, 1_048_577)).equals(body.subarray(1_000_003, 2_048_580))).toBe(true);
      expect((await range(body.length - 5, 100)).equals(body.subarray(body.length - 5))).toBe(true);
      expect(await range(body.length + 10, 5)).toHaveLength(0);
      expect(await range(7, 0)).toHaveLength(0);
      await expect(getRange(dest, 'missing', 0, 5)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    }
  });
});

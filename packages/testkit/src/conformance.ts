import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { BackupError, getRange, isBackupError, retryingDestination, type Destination, type ObjectInfo } from '@sutazai/backup-core';
import { FaultInjector } from './faults.js';

const MiB = 1024 * 1024;

export interface ConformanceOptions {
  /**
   * Makes a fresh, empty destination for each check (a new folder, bucket or prefix). The suite
   * calls `close()` on it when the check ends.
   */
  create: () => Promise<Destination> | Destination;
  /** Size of the large-object check in bytes; default 300 MiB. */
  largeObjectBytes?: number;
  /** How many keys the listing check holds; default 2000. */
  manyKeys?: number;
  /** Puts at once when filling the listing check; default 16. */
  putConcurrency?: number;
  /**
   * Bytes a failing upload sends before its body breaks; default 12 MiB, past the first part of a
   * multipart upload, so that object stores are tested with parts already on the server.
   */
  failAfterBytes?: number;
  /**
   * Writes the listing check's many small objects some faster way than `put` (e.g. straight into
   * the server's folder), for destinations where one put is a process or a round trip too many.
   * The check is about `list`; every other check uses `put`.
   */
  seed?: (destination: Destination, objects: { key: string; body: Buffer }[]) => Promise<void>;
}

export interface ConformanceCheck {
  name: string;
  run: () => Promise<void>;
}

/** Keys that exercise encodings: non-Latin scripts, decomposed accents, emoji, URL and shell metacharacters. */
export const UNICODE_KEYS = [
  'snapshots/données/résumé.txt',
  'snapshots/donne\u0301es/re\u0301sume\u0301.txt',
  'snapshots/日本語/ファイル 名.txt',
  'snapshots/emoji/🗄️ backup 📦.bin',
  'snapshots/Ελληνικά/Кириллица/עברית.dat',
  "snapshots/punct/a b+c%20d&e=f?g#h;i'j\"k~l*m[n]o{p}q$r!s@t,u(v)w^x`y|z.txt",
  'snapshots/dots/...three/.hidden/name.with.many.dots',
];

/** A check that runs `body` on a fresh destination and closes it. */
type CheckMaker = (name: string, body: (d: Destination) => Promise<void>) => ConformanceCheck;

interface Limits {
  largeBytes: number;
  manyKeys: number;
  putConcurrency: number;
  failAfter: number;
}

/**
 * The Destination contract (see core's destination.ts), as named checks a test runner registers:
 * `for (const c of runDestinationConformance({ create })) it(c.name, c.run)`.
 */
export function runDestinationConformance(options: ConformanceOptions): ConformanceCheck[] {
  const limits: Limits = {
    largeBytes: options.largeObjectBytes ?? 300 * MiB,
    manyKeys: options.manyKeys ?? 2000,
    putConcurrency: options.putConcurrency ?? 16,
    failAfter: options.failAfterBytes ?? 12 * MiB,
  };
  const check: CheckMaker = (name, body) => ({
    name,
    run: async () => {
      const d = await options.create();
      try {
        await body(d);
      } finally {
        await d.close?.();
      }
    },
  });
  return [
    ...roundTripChecks(check),
    ...listingChecks(check),
    ...failedUploadChecks(check, limits),
    ...keyChecks(check),
    ...scaleChecks(check, limits, options.seed),
    ...retryChecks(check),
  ];
}

/** put, get, stat and delete of single objects. */
function roundTripChecks(check: CheckMaker): ConformanceCheck[] {
  return [
    check('put then get returns the same bytes; stat and list report its size', async (d) => {
      const body = randomBytes(100_000);
      await d.put('snapshots/s1/a.bin', Readable.from([body]), { size: body.length, sha256: sha256(body) });
      assert.deepEqual(await readAll(await d.get('snapshots/s1/a.bin')), body);
      const info = await d.stat('snapshots/s1/a.bin');
      assert.ok(info, 'stat of an object that was put returns its info');
      assert.equal(info.key, 'snapshots/s1/a.bin');
      assert.equal(info.size, body.length);
      assert.deepEqual(sizes(await d.list('snapshots/')), { 'snapshots/s1/a.bin': body.length });
    }),
    check('put without size or sha256 (an unknown-length stream) works', async (d) => {
      const chunks = [randomBytes(1000), randomBytes(70_000), randomBytes(5)];
      await d.put('x/unknown-length', Readable.from(chunks));
      assert.deepEqual(await readAll(await d.get('x/unknown-length')), Buffer.concat(chunks));
    }),
    check('an empty object round-trips', async (d) => {
      await d.put('x/empty', Readable.from([]), { size: 0 });
      assert.equal((await readAll(await d.get('x/empty'))).length, 0);
      assert.equal((await d.stat('x/empty'))?.size, 0);
      assert.deepEqual(sizes(await d.list('x/')), { 'x/empty': 0 });
    }),
    check('put replaces an existing object whole', async (d) => {
      const first = randomBytes(300_000);
      const second = randomBytes(1234);
      await d.put('r/obj', Readable.from([first]), { size: first.length });
      await d.put('r/obj', Readable.from([second]), { size: second.length });
      assert.deepEqual(await readAll(await d.get('r/obj')), second);
      assert.equal((await d.stat('r/obj'))?.size, second.length);
      assert.deepEqual(Object.keys(sizes(await d.list('r/'))), ['r/obj']);
    }),
    check('a missing key: get throws E_NOT_FOUND, stat returns undefined, delete succeeds', async (d) => {
      await d.put('m/present', Readable.from([Buffer.from('here')]));
      for (const key of ['m/absent', 'nowhere/at/all']) {
        await assert.rejects(
          async () => readAll(await d.get(key)),
          (err: unknown) => isBackupError(err) && err.code === 'E_NOT_FOUND',
          `get(${key}) rejects with E_NOT_FOUND`,
        );
        assert.equal(await d.stat(key), undefined);
        await d.delete(key);
      }
      assert.deepEqual(await d.list('nowhere/'), []);
      assert.deepEqual(Object.keys(sizes(await d.list(''))), ['m/present']);
    }),
    check('delete removes an object from get, stat and list, and leaves its neighbours', async (d) => {
      await d.put('del/a', Readable.from([Buffer.from('a')]));
      await d.put('del/b', Readable.from([Buffer.from('bb')]));
      await d.put('del/deep/c', Readable.from([Buffer.from('ccc')]));
      await d.delete('del/a');
      await d.delete('del/deep/c');
      assert.equal(await d.stat('del/a'), undefined);
      assert.equal(await d.stat('del/deep/c'), undefined);
      await assert.rejects(async () => readAll(await d.get('del/a')), (e: unknown) => isBackupError(e) && e.code === 'E_NOT_FOUND');
      assert.deepEqual(sizes(await d.list('del/')), { 'del/b': 2 });
      // A key can be used again after its folder-like parent emptied.
      await d.put('del/deep/c', Readable.from([Buffer.from('again')]));
      assert.deepEqual(sizes(await d.list('del/')), { 'del/b': 2, 'del/deep/c': 5 });
    }),
  ];
}

/** What list returns, and that it never shows an upload under way. */
function listingChecks(check: CheckMaker): ConformanceCheck[] {
  return [
    check('list(prefix) returns every key starting with prefix, at any depth, and nothing else', async (d) => {
      const keys = { 'a/b/c.txt': 1, 'a/b/d.txt': 2, 'a/bc/e.txt': 3, 'a/x.txt': 4, 'z.txt': 5, 'a/b/deep/er/f.txt': 6 };
      for (const [key, size] of Object.entries(keys)) await d.put(key, Readable.from([randomBytes(size)]), { size });
      assert.deepEqual(sizes(await d.list('')), keys);
      assert.deepEqual(sizes(await d.list('a/b/')), { 'a/b/c.txt': 1, 'a/b/d.txt': 2, 'a/b/deep/er/f.txt': 6 });
      assert.deepEqual(sizes(await d.list('a/b')), { 'a/b/c.txt': 1, 'a/b/d.txt': 2, 'a/bc/e.txt': 3, 'a/b/deep/er/f.txt': 6 });
      assert.deepEqual(sizes(await d.list('a/x')), { 'a/x.txt': 4 });
      assert.deepEqual(sizes(await d.list('a/b/c.txt')), { 'a/b/c.txt': 1 });
      assert.deepEqual(await d.list('a/nothing/'), []);
      assert.deepEqual(await d.list('q'), []);
    }),
    check('concurrent puts of different keys all land intact', async (d) => {
      const bodies = Array.from({ length: 8 }, (_, i) => randomBytes(200_000 + i * 1000));
      await Promise.all(bodies.map((b, i) => d.put(`c/${i}/obj`, Readable.from(chunksOf(b, 16_384)), { size: b.length })));
      const got = await Promise.all(bodies.map(async (_, i) => readAll(await d.get(`c/${i}/obj`))));
      got.forEach((g, i) => assert.ok(g.equals(bodies[i]!), `c/${i}/obj differs`));
      assert.equal((await d.list('c/')).length, bodies.length);
    }),
    check('an upload in progress is not listed and not stat-able', async (d) => {
      const body = new PassThrough();
      const head = randomBytes(256 * 1024);
      const tail = randomBytes(1024);
      const put = d.put('p/in-progress', body, { size: head.length + tail.length });
      body.write(head);
      await waitUntil(() => body.readableLength === 0, 15_000);
      await sleep(300);
      assert.deepEqual(await d.list('p/'), [], 'list shows an unfinished upload');
      assert.equal(await d.stat('p/in-progress'), undefined, 'stat sees an unfinished upload');
      body.end(tail);
      await put;
      assert.deepEqual(sizes(await d.list('p/')), { 'p/in-progress': head.length + tail.length });
    }),
  ];
}

/** A put whose body breaks leaves nothing, and the previous object whole. */
function failedUploadChecks(check: CheckMaker, { failAfter }: Limits): ConformanceCheck[] {
  return [
    check(`a failed upload (body breaks after ${formatMiB(failAfter)}) leaves nothing under its key`, async (d) => {
      await assert.rejects(d.put('f/new', failingBody(failAfter), { size: failAfter * 2 }), 'put of a broken body rejects');
      assert.equal(await d.stat('f/new'), undefined);
      assert.deepEqual(await d.list('f/'), []);
      await assert.rejects(async () => readAll(await d.get('f/new')), (e: unknown) => isBackupError(e) && e.code === 'E_NOT_FOUND');
      // The key stays usable.
      const body = randomBytes(10_000);
      await d.put('f/new', Readable.from([body]));
      assert.deepEqual(await readAll(await d.get('f/new')), body);
    }),
    check('a failed upload over an existing object leaves the old one whole', async (d) => {
      const old = randomBytes(50_000);
      await d.put('f/existing', Readable.from([old]), { size: old.length });
      await assert.rejects(d.put('f/existing', failingBody(failAfter), { size: failAfter * 2 }));
      assert.deepEqual(await readAll(await d.get('f/existing')), old);
      assert.deepEqual(sizes(await d.list('f/')), { 'f/existing': old.length });
    }),
  ];
}

/** Keys in any script round-trip; keys that would escape the root are refused. */
function keyChecks(check: CheckMaker): ConformanceCheck[] {
  return [
    check('unicode and punctuation in keys round-trip exactly through put, list, stat, get and delete', async (d) => {
      const bodies = new Map(UNICODE_KEYS.map((k, i) => [k, Buffer.from(`${i}:${k}`)]));
      for (const [key, body] of bodies) await d.put(key, Readable.from([body]), { size: body.length });
      const listed = sizes(await d.list('snapshots/'));
      assert.deepEqual(Object.keys(listed).sort(), [...bodies.keys()].sort(), 'list returns the keys exactly as put (no normalization)');
      for (const [key, body] of bodies) {
        assert.equal(listed[key], body.length);
        assert.equal((await d.stat(key))?.size, body.length, `stat(${key})`);
        assert.deepEqual(await readAll(await d.get(key)), body, `get(${key})`);
      }
      assert.deepEqual(Object.keys(sizes(await d.list('snapshots/données/'))), ['snapshots/données/résumé.txt']);
      for (const key of bodies.keys()) await d.delete(key);
      assert.deepEqual(await d.list(''), []);
    }),
    check('keys with "." or ".." segments, empty segments or a leading "/" are refused', async (d) => {
      for (const key of ['../escape', 'a/../../escape', '/absolute', 'a//b', './a', 'a/./b']) {
        await assert.rejects(d.put(key, Readable.from([Buffer.from('x')])), `put(${JSON.stringify(key)}) is refused`);
      }
      assert.deepEqual(await d.list(''), []);
    }),
  ];
}

/** A large object streams through; a listing of many keys is complete. */
function scaleChecks(check: CheckMaker, { largeBytes, manyKeys, putConcurrency }: Limits, seed: ConformanceOptions['seed']): ConformanceCheck[] {
  return [
    check(`a ${formatMiB(largeBytes)} object streams through put and get intact`, async (d) => {
      const { stream, digest } = generated(largeBytes);
      await d.put('large/object.bin', stream, { size: largeBytes });
      const expected = digest();
      assert.equal((await d.stat('large/object.bin'))?.size, largeBytes);
      const hash = createHash('sha256');
      let got = 0;
      for await (const chunk of await d.get('large/object.bin')) {
        hash.update(chunk as Buffer);
        got += (chunk as Buffer).length;
      }
      assert.equal(got, largeBytes);
      assert.equal(hash.digest('hex'), expected);
    }),
    check(`a listing of ${manyKeys} keys is complete and exact`, async (d) => {
      const objects = Array.from({ length: manyKeys }, (_, i) => {
        const key = `snapshots/20260101T000000Z-many-${String(Math.floor(i / 500)).padStart(2, '0')}/obj-${String(i).padStart(6, '0')}.bin`;
        return { key, body: Buffer.from(`object ${i}\n`.repeat(1 + (i % 7))) };
      });
      if (seed) await seed(d, objects);
      else await mapLimit(objects, putConcurrency, (o) => d.put(o.key, Readable.from([o.body]), { size: o.body.length }));
      const listed = await d.list('snapshots/');
      assert.equal(listed.length, manyKeys, `list returned ${listed.length} of ${manyKeys} keys`);
      assert.deepEqual(sizes(listed), Object.fromEntries(objects.map((o) => [o.key, o.body.length])));
      const one = objects[manyKeys >> 1]!;
      assert.equal((await d.list(one.key)).length, 1);
    }),
  ];
}

/**
 * Faults injected in front of the destination (FaultInjector), seen through the retrying
 * destination core puts around every registered destination: a dropped connection on list, get,
 * stat, delete (or a put whose body was not read yet) is tried again and succeeds; an
 * authentication failure or a missing key is not tried again.
 */
function retryChecks(check: CheckMaker): ConformanceCheck[] {
  const throughCore = (d: Destination) => {
    const faults = new FaultInjector(d);
    // Core's own retry policy, with short delays so the suite stays quick.
    return { faults, core: retryingDestination(faults, { name: 'conformance', retry: { baseDelayMs: 10 } }) };
  };
  return [
    check('a transient failure of list, get, getRange, stat, delete or put is retried through core and succeeds', async (d) => {
      await d.put('retry/a', Readable.from([Buffer.from('abc')]));
      const { faults, core } = throughCore(d);
      faults.failOnce(['list', 'get', 'getRange', 'stat', 'delete', 'put']);
      assert.deepEqual(sizes(await core.list('retry/')), { 'retry/a': 3 });
      assert.deepEqual(await readAll(await core.get('retry/a')), Buffer.from('abc'));
      assert.deepEqual(await readAll(await getRange(core, 'retry/a', 1, 1)), Buffer.from('b'));
      assert.equal((await core.stat('retry/a'))?.size, 3);
      await core.delete('retry/a');
      assert.equal(await d.stat('retry/a'), undefined, 'the retried delete removed the object');
      await core.put('retry/b', Readable.from([Buffer.from('put again')]));
      assert.deepEqual(await readAll(await d.get('retry/b')), Buffer.from('put again'));
      assert.deepEqual(faults.calls, { list: 2, get: 2, getRange: 2, stat: 2, delete: 2, put: 2 }, 'each operation was tried twice');
    }),

    check('a permanent error is not retried: E_AUTH, and a missing key', async (d) => {
      await d.put('retry/a', Readable.from([Buffer.from('abc')]));
      const { faults, core } = throughCore(d);
      const refused = (operation: string) => new BackupError('E_AUTH', `injected fault: ${operation}: login refused`);
      faults.failOnce(['list', 'get', 'stat', 'delete'], refused);
      const isAuth = (e: unknown) => isBackupError(e) && e.code === 'E_AUTH';
      await assert.rejects(core.list('retry/'), isAuth);
      await assert.rejects(core.get('retry/a'), isAuth);
      await assert.rejects(core.stat('retry/a'), isAuth);
      await assert.rejects(core.delete('retry/a'), isAuth);
      assert.deepEqual(faults.calls, { list: 1, get: 1, stat: 1, delete: 1 }, 'E_AUTH was tried once');
      faults.reset();
      await assert.rejects(async () => readAll(await core.get('retry/absent')), (e: unknown) => isBackupError(e) && e.code === 'E_NOT_FOUND');
      assert.deepEqual(faults.calls, { get: 1 }, 'a missing key was tried once');
    }),
  ];
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function sizes(list: ObjectInfo[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of [...list].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    assert.ok(!(o.key in out), `list returned ${o.key} twice`);
    out[o.key] = o.size;
  }
  return out;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

function chunksOf(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

/** A body that sends `bytes` bytes, then fails as a broken source or connection would. */
function failingBody(bytes: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= bytes) {
        this.destroy(new Error('simulated failure of the upload body'));
        return;
      }
      const n = Math.min(MiB, bytes - sent);
      sent += n;
      this.push(randomBytes(n));
    },
  });
}

/** `bytes` random bytes as a stream, hashed on the way out. */
function generated(bytes: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let left = bytes;
  let digest: string | undefined;
  const stream = new Readable({
    highWaterMark: MiB,
    read() {
      if (left === 0) {
        digest = hash.digest('hex');
        this.push(null);
        return;
      }
      const chunk = randomBytes(Math.min(MiB, left));
      left -= chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return {
    stream,
    digest: () => {
      assert.ok(digest, 'the destination did not read the whole body');
      return digest;
    },
  };
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the destination to read the body');
    await sleep(10);
  }
}

function formatMiB(bytes: number): string {
  return bytes >= MiB ? `${+(bytes / MiB).toFixed(1)} MiB` : `${bytes} bytes`;
}

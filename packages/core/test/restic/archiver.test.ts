import { appendFile, mkdir, mkdtemp, readFile, realpath, rm, utimes, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Archiver, type ArchiverOptions } from '../../src/restic/archiver.js';
import { FastCdcChunker } from '../../src/restic/fastcdc.js';
import type { ResticNode } from '../../src/restic/node.js';
import { fileStream, findPath, walkTree } from '../../src/restic/walk.js';
import { MemoryStore } from './memory-store.js';

const chunker = () => new FastCdcChunker('3dea92648f6e83');

async function archive(store: MemoryStore, sources: Record<string, string[]>, options: Partial<ArchiverOptions> = {}) {
  const archiver = new Archiver({ store, chunker, ...options });
  for (const [source, paths] of Object.entries(sources)) await archiver.addTree(source, paths);
  return { root: await archiver.finish(), stats: archiver.stats };
}

async function fileText(store: MemoryStore, root: string, snapshotPath: string): Promise<string> {
  return text(fileStream(store, (await findPath(store, root, snapshotPath)).at(-1)!));
}

describe('archiver', () => {
  let dir: string;
  let store: MemoryStore;
  beforeEach(async () => {
    dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'archiver-')));
    store = new MemoryStore();
    await mkdir(path.join(dir, 'data', 'inner'), { recursive: true });
    await mkdir(path.join(dir, 'other'));
    await writeFile(path.join(dir, 'data', 'a.txt'), 'alpha');
    await writeFile(path.join(dir, 'data', 'inner', 'b.txt'), 'beta');
    await writeFile(path.join(dir, 'other', 'c.txt'), 'gamma');
    await writeFile(path.join(dir, 'other', 'left-out.txt'), 'not selected');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('puts each source under /<source>/<absolute path> and a stream at /<source>/<name>', async () => {
    const archiver = new Archiver({ store, chunker });
    await archiver.addTree('files', [path.join(dir, 'data'), path.join(dir, 'data', 'inner'), path.join(dir, 'other', 'c.txt')]);
    await archiver.addStream('app-db', 'dump.sql', Readable.from([Buffer.from('CREATE TABLE t;\n'), Buffer.from('COPY t;\n')]));
    const root = await archiver.finish();
    const paths: string[] = [];
    for await (const entry of walkTree(store, root)) paths.push(entry.path);
    const base = `/files${dir}`;
    expect(paths.filter((p) => p.startsWith(base) && p !== base)).toEqual([
      `${base}/data`,
      `${base}/data/a.txt`,
      `${base}/data/inner`,
      `${base}/data/inner/b.txt`,
      `${base}/other`,
      `${base}/other/c.txt`,
    ]);
    expect(paths).toContain('/app-db/dump.sql');
    expect(await fileText(store, root, `${base}/data/inner/b.txt`)).toBe('beta');
    const dump = (await findPath(store, root, '/app-db/dump.sql')).at(-1)!;
    expect(dump).toMatchObject({ type: 'file', mode: 0o600, size: 24 });
    expect(await text(fileStream(store, dump))).toBe('CREATE TABLE t;\nCOPY t;\n');
    // Three files and the stream; other/left-out.txt is not selected.
    expect(archiver.stats).toMatchObject({ filesNew: 4, bytesRead: 5 + 4 + 5 + 24 });
  });

  it('does not read files the parent snapshot has unchanged, and reads changed ones', async () => {
    const first = await archive(store, { files: [dir] });
    const second = await archive(store, { files: [dir] }, { parentTree: first.root });
    expect(second.stats).toMatchObject({ filesUnmodified: 4, filesNew: 0, filesChanged: 0, bytesRead: 0, dataBlobs: 0 });

    // Same bytes, new mtime: read again, nothing new stored.
    await utimes(path.join(dir, 'data', 'a.txt'), 1_000_000, 1_000_000);
    await writeFile(path.join(dir, 'other', 'c.txt'), 'GAMMA');
    await writeFile(path.join(dir, 'other', 'new.txt'), 'new');
    const third = await archive(store, { files: [dir] }, { parentTree: second.root });
    expect(third.stats).toMatchObject({ filesUnmodified: 2, filesChanged: 2, filesNew: 1, bytesRead: 5 + 5 + 3, dataBlobs: 2 });
    expect(await fileText(store, third.root, `/files${dir}/other/c.txt`)).toBe('GAMMA');
  });

  it('reads everything with forceRead, and re-reads a file whose blobs the repository lost', async () => {
    const first = await archive(store, { files: [dir] });
    const forced = await archive(store, { files: [dir] }, { parentTree: first.root, forceRead: true });
    expect(forced.stats).toMatchObject({ filesUnmodified: 0, filesChanged: 4, bytesRead: 5 + 4 + 5 + 12, dataBlobs: 0 });

    const node = (await findPath(store, first.root, `/files${dir}/data/a.txt`)).at(-1)!;
    store.blobs.delete(`data/${node.content![0]}`);
    const repaired = await archive(store, { files: [dir] }, { parentTree: first.root });
    expect(repaired.stats).toMatchObject({ filesUnmodified: 3, filesChanged: 1, dataBlobs: 1 });
    expect(await fileText(store, repaired.root, `/files${dir}/data/a.txt`)).toBe('alpha');
  });

  it('stores only the new end of an appended log: every chunk but the last is shared', async () => {
    const log = path.join(dir, 'app.log');
    const lines = Array.from({ length: 120_000 }, (_, i) => `2024-05-01T12:00:${String(i % 60).padStart(2, '0')}Z request ${i} ${randomBytes(8).toString('hex')}\n`);
    await writeFile(log, lines.join(''));
    const first = await archive(store, { logs: [log] });
    const before = (await findPath(store, first.root, `/logs${log}`)).at(-1)!.content!;
    expect(before.length).toBeGreaterThan(3);
    const dataBefore = store.added.data;

    await appendFile(log, 'one more line\n'.repeat(1000));
    const second = await archive(store, { logs: [log] }, { parentTree: first.root });
    const after = (await findPath(store, second.root, `/logs${log}`)).at(-1)!.content!;
    expect(after.slice(0, before.length - 1)).toEqual(before.slice(0, -1));
    const lastChunk = store.plaintextSize('data', after.at(-1)!)!;
    expect(store.added.data - dataBefore).toBe(lastChunk);
    expect(second.stats.bytesRead).toBe((await readFile(log)).length);
  });

  it('fails on a missing path, or reports it and goes on when told to', async () => {
    await expect(archive(store, { files: [path.join(dir, 'missing'), path.join(dir, 'data')] })).rejects.toMatchObject({ code: 'E_SOURCE', message: expect.stringContaining('missing') });
    const errors: string[] = [];
    const run = await archive(store, { files: [path.join(dir, 'missing'), path.join(dir, 'data')] }, { onError: (p) => errors.push(p) });
    expect(errors).toEqual([path.join(dir, 'missing')]);
    expect(await fileText(store, run.root, `/files${dir}/data/a.txt`)).toBe('alpha');
  });

  it('fails a stream that fails, and leaves it out of the snapshot', async () => {
    const archiver = new Archiver({ store, chunker });
    const broken = new Readable({
      read() {
        this.destroy(new Error('pg_dump exited 1'));
      },
    });
    await expect(archiver.addStream('db', 'dump.sql', broken)).rejects.toThrow('pg_dump exited 1');
    await expect(archiver.finish()).rejects.toThrow('pg_dump exited 1');
  });

  it('refuses names that cannot be a folder or file, and an entry added twice', async () => {
    const archiver = new Archiver({ store, chunker });
    await expect(archiver.addTree('a/b', [dir])).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(archiver.addStream('db', '..', Readable.from([]))).rejects.toMatchObject({ code: 'E_USAGE' });
    await archiver.addStream('db', 'dump.sql', Readable.from(['x']));
    await expect(archiver.addStream('db', 'dump.sql', Readable.from(['y']))).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  it('hands the store views it may hold until save resolves, for many small files at once', async () => {
    const many = path.join(dir, 'many');
    await mkdir(many);
    const contents = Array.from({ length: 150 }, (_, i) => `file ${i} ${'x'.repeat(i * 37)}`);
    await Promise.all(contents.map((c, i) => writeFile(path.join(many, `f${i}`), c)));
    await writeFile(path.join(many, 'large'), randomBytes(5 * 1024 * 1024));
    store.saveDelayMs = 2;
    const run = await archive(store, { files: [many] }, { files: 8 } as Partial<ArchiverOptions>);
    for (const [i, c] of contents.entries()) expect(await fileText(store, run.root, `/files${many}/f${i}`)).toBe(c);
    const large = (await findPath(store, run.root, `/files${many}/large`)).at(-1)! as ResticNode;
    const bytes = Buffer.concat(await Promise.all(large.content!.map((id) => store.load('data', id))));
    expect(bytes.equals(await readFile(path.join(many, 'large')))).toBe(true);
  });
});

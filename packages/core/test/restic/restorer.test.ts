import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Archiver } from '../../src/restic/archiver.js';
import { FastCdcChunker } from '../../src/restic/fastcdc.js';
import { GoMode, type ResticNode } from '../../src/restic/node.js';
import { restoreSnapshot } from '../../src/restic/restorer.js';
import { blobId, encodeTree } from '../../src/restic/tree.js';
import { fileStream, loadTree } from '../../src/restic/walk.js';
import { compareTrees, LATIN1_NAME, makeFixture } from './fixture.js';
import { MemoryStore } from './memory-store.js';

const chunker = () => new FastCdcChunker('3dea92648f6e83');
const T = '2024-01-02T03:04:05.123456789Z';
const special = (st: { isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }) =>
  st.isFIFO() || st.isSocket() || st.isCharacterDevice() || st.isBlockDevice();

async function putTree(store: MemoryStore, nodes: ResticNode[]): Promise<string> {
  const data = encodeTree(nodes);
  const id = blobId(data);
  await store.save('tree', id, data);
  return id;
}

async function putData(store: MemoryStore, bytes: string): Promise<string> {
  const id = blobId(Buffer.from(bytes));
  await store.save('data', id, Buffer.from(bytes));
  return id;
}

const file = (name: string, content: string[], size: number): ResticNode => ({ name, type: 'file', mode: 0o644, mtime: T, atime: T, ctime: T, uid: 0, gid: 0, size, content });
const dir = (name: string, subtree: string): ResticNode => ({ name, type: 'dir', mode: GoMode.dir + 0o755, mtime: T, atime: T, ctime: T, uid: 0, gid: 0, content: null, subtree });
const link = (name: string, target: string): ResticNode => ({ name, type: 'symlink', mode: GoMode.symlink + 0o777, mtime: T, atime: T, ctime: T, uid: 0, gid: 0, content: null, linkTarget: target });

describe('restorer', () => {
  let work: string;
  let source: string;
  let store: MemoryStore;
  let root: string;
  let target: string;
  let n = 0;

  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'restorer-')));
    source = path.join(work, 'src');
    await makeFixture(source);
    store = new MemoryStore();
    const archiver = new Archiver({ store, chunker });
    await archiver.addTree('files', [source]);
    await archiver.addStream('db', 'dump.sql', Readable.from(['SELECT 1;\n']));
    root = await archiver.finish();
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    target = path.join(work, `target-${++n}`);
  });

  it('restores every file, folder and symlink byte for byte with modes and mtimes', async () => {
    const warnings: string[] = [];
    const stats = await restoreSnapshot({ store, rootTree: root, target, label: 'snapshot test', onWarning: (w) => warnings.push(w) });
    const restored = path.join(target, 'files', source);
    const diffs = await compareTrees(source, restored, {
      skip: special,
      // Absolute links point inside DIR/files/, where the source keeps its absolute paths.
      expectLink: (p, t) => (t.startsWith('/') ? path.relative(path.dirname(path.join('/', source, p)), t) : t),
    });
    expect(diffs).toEqual([]);
    expect(await readlink(path.join(restored, 'abs'))).toBe(path.relative(path.join('/', source), '/etc/passwd'));
    expect(await readFile(Buffer.concat([Buffer.from(`${restored}/`), LATIN1_NAME]), 'utf8')).toBe('latin-1');
    expect(await readFile(path.join(target, 'db', 'dump.sql'), 'utf8')).toBe('SELECT 1;\n');
    expect((await lstat(path.join(target, 'db', 'dump.sql'))).mode & 0o777).toBe(0o600);
    expect(stats).toMatchObject({ symlinks: 3 });
    expect(warnings).toEqual([
      'snapshot test: 1 absolute symlink(s) rewritten to point inside the restored tree',
      'snapshot test: 2 device node(s), FIFO(s) or socket(s) left out',
    ]);
  });

  it('keeps setuid and owners only with preserveOwner', async () => {
    await restoreSnapshot({ store, rootTree: root, target, label: 't', include: `/files${source}/a.txt`, preserveOwner: true });
    expect((await lstat(path.join(target, 'files', source, 'a.txt'))).mode & 0o7777).toBe(0o4755);
    const plain = `${target}-plain`;
    await restoreSnapshot({ store, rootTree: root, target: plain, label: 't', include: `/files${source}/a.txt` });
    expect((await lstat(path.join(plain, 'files', source, 'a.txt'))).mode & 0o7777).toBe(0o755);
  });

  it('restores one source, or one path inside it at its full path', async () => {
    await restoreSnapshot({ store, rootTree: root, target, label: 't', include: '/db' });
    expect(await readdir(target)).toEqual(['db']);
    const sub = `${target}-sub`;
    await restoreSnapshot({ store, rootTree: root, target: sub, label: 't', include: `/files${source}/sub` });
    expect(await compareTrees(path.join(source, 'sub'), path.join(sub, 'files', source, 'sub'))).toEqual([]);
    expect(await readdir(path.join(sub, 'files', source))).toEqual(['sub']);
    await expect(restoreSnapshot({ store, rootTree: root, target: `${target}-x`, label: 't', include: '/files/nope' })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });

  it('streams one file (a database dump) and fails the stream when its blobs do not add up', async () => {
    const dumpTree = await putTree(store, [file('dump.sql', [await putData(store, 'abc'), await putData(store, 'def')], 6)]);
    const nodes = await loadTree(store, dumpTree);
    expect(await text(fileStream(store, nodes[0]!))).toBe('abcdef');
    await expect(text(fileStream(store, { ...nodes[0]!, size: 7 }))).rejects.toMatchObject({ code: 'E_INTEGRITY', message: expect.stringMatching(/holds 6 bytes, but its node says 7/) });
    await expect(text(fileStream(store, { ...nodes[0]!, content: ['f'.repeat(64)] }))).rejects.toMatchObject({ code: 'E_INTEGRITY' });
  });

  it('refuses a target folder that is not empty', async () => {
    await mkdir(target);
    await writeFile(path.join(target, 'keep'), 'mine');
    await expect(restoreSnapshot({ store, rootTree: root, target, label: 't' })).rejects.toMatchObject({ code: 'E_RESTORE', message: expect.stringContaining('not empty') });
    expect(await readFile(path.join(target, 'keep'), 'utf8')).toBe('mine');
  });
});

describe('restorer against hostile trees', () => {
  let work: string;
  let store: MemoryStore;
  let target: string;
  let n = 0;
  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'hostile-')));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    store = new MemoryStore();
    target = path.join(work, `t${++n}`);
  });

  /** A snapshot tree `/src/<nodes>`. */
  const snapshot = async (nodes: ResticNode[]) => putTree(store, [dir('src', await putTree(store, nodes))]);

  const refused = async (rootTree: string, message: RegExp, options: Partial<Parameters<typeof restoreSnapshot>[0]> = {}) => {
    await expect(restoreSnapshot({ store, rootTree, target, label: 'evil', ...options })).rejects.toMatchObject({ message: expect.stringMatching(message) });
    // Nothing written, not even the target folder.
    await expect(lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  };

  it.each([
    ['..', /refused snapshot entry "src\/..": the name ".."/],
    ['.', /the name "."/],
    ['', /an empty name/],
    ['a/b', /a name with "\/"/],
    ['nul\0byte', /a name with a NUL byte/],
  ])('refuses the name %j', async (name, message) => {
    const ok = await putData(store, 'x');
    await refused(await snapshot([file('fine', [ok], 1), file(name, [ok], 1)]), message);
  });

  it('refuses a name twice in one folder, and unknown node types', async () => {
    const ok = await putData(store, 'x');
    await refused(await snapshot([file('twin', [ok], 1), link('twin', 'fine')]), /appears twice/);
    await refused(await snapshot([{ ...file('odd', [], 0), type: 'whiteout' }]), /unknown entry type "whiteout"/);
  });

  it('refuses relative links out of the source folder, rewrites absolute ones, and catches chains that lead out', async () => {
    await refused(await snapshot([link('out', '../../etc/passwd')]), /symlink points outside the restored tree/);
    const abs = await snapshot([link('passwd', '/etc/passwd')]);
    await restoreSnapshot({ store, rootTree: abs, target, label: 'evil' });
    expect(await readlink(path.join(target, 'src', 'passwd'))).toBe('etc/passwd');
    // Each link alone stays inside; followed together they climb out of src.
    target = `${target}-chain`;
    const sub = await putTree(store, [link('up', '..')]);
    await refused(await snapshot([dir('sub', sub), link('x', 'sub'), link('z', 'x/up/..')]), /leads outside the restored tree through other symlinks/);
  });

  it('refuses a missing data blob and a size that does not match, before writing', async () => {
    await refused(await snapshot([file('gone', ['e'.repeat(64)], 3)]), /data blob e+ is not in the repository; nothing was restored/);
    const id = await putData(store, 'short');
    await refused(await snapshot([file('a', [id], 5), file('liar', [id], 3)]), /src\/liar: its blobs hold 5 bytes, its node says 3; nothing was restored/);
    await refused(await snapshot([file('a', [id], 5), file('short', [id, id], 11)]), /its blobs hold 10 bytes, its node says 11/);
  });

  it('refuses trees deeper than the limit and trees that repeat a subtree into millions of entries', async () => {
    let deep = await putTree(store, []);
    for (let i = 0; i < 8; i++) deep = await putTree(store, [dir(`d${i}`, deep)]);
    await refused(await putTree(store, [dir('src', deep)]), /nested \d+ folders deep \(the limit is 6\)/, { maxDepth: 6 });
    let wide = await putTree(store, [file('f', [await putData(store, 'x')], 1)]);
    for (let i = 0; i < 30; i++) wide = await putTree(store, [dir('a', wide), dir('b', wide)]);
    await refused(await putTree(store, [dir('src', wide)]), /more than 10000 entries/, { maxEntries: 10_000 });
  });
});

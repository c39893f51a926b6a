/**
 * `restore --to DIR`'s handling of its target, over a real snapshot in a temp folder: where each
 * source lands, what is refused (and that a refusal or a corrupt artifact leaves DIR as it was),
 * what `--force` replaces and what it leaves, and that sparse files stay sparse.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import type { ArtifactReader } from '../src/reader.js';
import { checkFreeSpace, restoreToDir } from '../src/restore.js';
import { capturingLogger } from './helpers/repo-fixtures.js';
import { makeUnwritable } from './helpers/unwritable.js';
import { writeSnapshot } from './helpers/snapshot-fixture.js';

const ID = '20261126T020000Z-daily-3f9a';

let root: string;
let source: string;
let target: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-restore-'));
  source = path.join(root, 'source');
  target = path.join(root, 'target');
  await fsp.mkdir(path.join(source, 'sub'), { recursive: true });
  await fsp.writeFile(path.join(source, 'a.txt'), 'new a');
  await fsp.writeFile(path.join(source, 'link'), 'a file in the snapshot');
  await fsp.writeFile(path.join(source, 'sub', 'new.txt'), 'new');
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** Every path under `dir` with its content (files), target (links) or `/` (folders). */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await fsp.readdir(dir, { recursive: true, withFileTypes: true })) {
    const abs = path.join(entry.parentPath, entry.name);
    const rel = path.relative(dir, abs);
    if (entry.isSymbolicLink()) out[rel] = `-> ${await fsp.readlink(abs)}`;
    else if (entry.isDirectory()) out[rel] = '/';
    else out[rel] = await fsp.readFile(abs, 'utf8');
  }
  return out;
}

const snapshotTree = { 'a.txt': 'new a', link: 'a file in the snapshot', sub: '/', 'sub/new.txt': 'new' };

async function readers(extra: Parameters<typeof writeSnapshot>[2] = []) {
  return writeSnapshot(path.join(root, 'repo'), ID, [{ source: 'app', type: 'tree', from: source }, { source: 'db', type: 'file', content: 'SELECT 1;\n', filename: 'db.sql' }, ...extra], capturingLogger().logger);
}

describe('restore --to DIR', () => {
  it('puts each source in DIR/<source>, creating DIR, and leaves no work folder behind', async () => {
    const restored = await restoreToDir(await readers(), target);
    expect(restored.map(({ source, file, path: p }) => ({ source, file, path: p }))).toEqual([
      { source: 'app', file: 'app.tar', path: path.join(target, 'app') },
      { source: 'db', file: 'db.dump', path: path.join(target, 'db', 'db.sql') },
    ]);
    expect(restored[0]!.stats).toMatchObject({ files: 3, bytes: 30 });
    expect(await tree(target)).toEqual({ app: '/', db: '/', 'db/db.sql': 'SELECT 1;\n', ...Object.fromEntries(Object.entries(snapshotTree).map(([k, v]) => [`app/${k}`, v])) });
  });

  it('names a file artifact without a filename by its file, and restores into empty folders', async () => {
    await fsp.mkdir(path.join(target, 'app'), { recursive: true });
    await fsp.mkdir(path.join(target, 'notes'));
    const restored = await restoreToDir(await readers([{ source: 'notes', type: 'file', content: 'hello' }]), target);
    expect(restored.at(-1)!.path).toBe(path.join(target, 'notes', 'notes.dump'));
    expect(await fsp.readFile(path.join(target, 'notes', 'notes.dump'), 'utf8')).toBe('hello');
    expect(await tree(path.join(target, 'app'))).toEqual(snapshotTree);
  });

  it('refuses a non-empty DIR/<source> without --force, and a link or a file there even with it; DIR stays as it was', async () => {
    const outside = path.join(root, 'outside');
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'precious'), 'keep me');
    const cases: [string, () => Promise<unknown>, boolean, string][] = [
      ['full', () => fsp.writeFile(path.join(target, 'app', 'mine.txt'), 'mine'), false, `${path.join(target, 'app')} is not empty: restore into an empty folder, or pass --force to overwrite`],
      [
        'link',
        () => fsp.symlink(outside, path.join(target, 'app')),
        true,
        `${path.join(target, 'app')} is a symbolic link (to ${outside}): a restore never writes through a link; remove the link, or restore into another folder; nothing was restored`,
      ],
      ['file', () => fsp.writeFile(path.join(target, 'app'), 'a file'), true, `${path.join(target, 'app')} exists and is not a folder: remove it, or restore into another folder; nothing was restored`],
    ];
    for (const [name, make, force, message] of cases) {
      await fsp.rm(target, { recursive: true, force: true });
      await fsp.mkdir(target);
      if (name === 'full') await fsp.mkdir(path.join(target, 'app'));
      await make();
      const before = await tree(target);
      const err = await restoreToDir(await readers(), target, { force }).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(BackupError);
      expect((err as BackupError).toJSON(), name).toEqual({ code: 'E_RESTORE', message });
      expect(await tree(target), name).toEqual(before);
    }
    expect(await tree(outside)).toEqual({ precious: 'keep me' });
  });

  it('refuses a source name that is not a plain name before writing anything', async () => {
    const reader = (await readers())[0]!;
    const planted: ArtifactReader = Object.assign(Object.create(reader) as ArtifactReader, { artifact: { ...reader.artifact, source: '..' } });
    await expect(restoreToDir([planted], target)).rejects.toThrow(new BackupError('E_RESTORE', 'refused source name "..": not a plain name'));
    await expect(fsp.access(target)).rejects.toThrow();
  });
});

describe('restore --force', () => {
  it("replaces each entry the snapshot holds (a link there is removed, not followed) and leaves the others", async () => {
    const outside = path.join(root, 'outside');
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'precious'), 'keep me');
    const app = path.join(target, 'app');
    await fsp.mkdir(path.join(app, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(app, 'a.txt'), 'old a');
    await fsp.writeFile(path.join(app, 'keep.txt'), 'not in the snapshot');
    await fsp.writeFile(path.join(app, 'sub', 'old.txt'), 'old');
    await fsp.symlink(outside, path.join(app, 'link'));
    await fsp.mkdir(path.join(target, 'db'));
    await fsp.writeFile(path.join(target, 'db', 'db.sql'), 'DROP TABLE users;');

    const restored = await restoreToDir(await readers(), target, { force: true });
    expect(restored.map((r) => r.path)).toEqual([app, path.join(target, 'db', 'db.sql')]);
    expect(await tree(app)).toEqual({ ...snapshotTree, 'keep.txt': 'not in the snapshot' });
    expect(await fsp.readFile(path.join(target, 'db', 'db.sql'), 'utf8')).toBe('SELECT 1;\n');
    expect(await tree(outside)).toEqual({ precious: 'keep me' });
    expect((await fsp.readdir(target)).sort()).toEqual(['app', 'db']);
  });

  it('adds what the snapshot holds and DIR/<source> lacks', async () => {
    await fsp.mkdir(path.join(target, 'app'), { recursive: true });
    await fsp.writeFile(path.join(target, 'app', 'keep.txt'), 'not in the snapshot');
    await restoreToDir(await readers(), target, { force: true });
    expect(await tree(path.join(target, 'app'))).toEqual({ ...snapshotTree, 'keep.txt': 'not in the snapshot' });
  });

  it('a corrupt artifact leaves DIR untouched, --force or not, and a DIR it made is removed again', async () => {
    const app = path.join(target, 'app');
    await fsp.mkdir(app, { recursive: true });
    await fsp.writeFile(path.join(app, 'a.txt'), 'old a');
    const all = await readers();
    const dump = path.join(root, 'repo', 'snapshots', ID, 'db.dump');
    await fsp.writeFile(dump, 'SELECT 2;\n');
    const err = await restoreToDir(all, target, { force: true }).catch((e: BackupError) => e);
    expect(err).toMatchObject({ code: 'E_INTEGRITY', message: expect.stringContaining(`backupRoot: ${ID}/db.dump: sha256 mismatch`) });
    expect(await tree(target)).toEqual({ app: '/', 'app/a.txt': 'old a' });

    const fresh = path.join(root, 'fresh', 'deeper');
    await expect(restoreToDir(all, fresh)).rejects.toMatchObject({ code: 'E_INTEGRITY' });
    await expect(fsp.access(path.join(root, 'fresh'))).rejects.toThrow();
  });

  it('an archive holding more than its manifest records is refused, nothing restored', async () => {
    const all = await writeSnapshot(path.join(root, 'repo'), ID, [{ source: 'app', type: 'tree', from: source, meta: { entries: { files: 3, bytes: 10 } } }], capturingLogger().logger);
    const err = await restoreToDir(all, target).catch((e: BackupError) => e);
    expect(err).toMatchObject({ code: 'E_RESTORE', message: expect.stringContaining('more than the 10 bytes') });
    await expect(fsp.access(target)).rejects.toThrow();
  });
});

describe('what lands on disk', () => {
  it('sparse files stay sparse, with the same bytes', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    big.write('head', 0);
    big.write('tail', big.length - 4);
    await fsp.writeFile(path.join(source, 'disk.img'), big);
    await restoreToDir(await readers(), target);
    const file = path.join(target, 'app', 'disk.img');
    expect((await fsp.readFile(file)).equals(big)).toBe(true);
    const st = await fsp.stat(file);
    expect(st.size).toBe(big.length);
    expect(st.blocks * 512).toBeLessThan(1024 * 1024);
  });

  it("owners come back only with --preserve-owner (as root); absolute links are made to point inside, with a warning", async () => {
    await fsp.chown(path.join(source, 'a.txt'), 1234, 1234);
    await fsp.symlink('/etc/hostname', path.join(source, 'abs'));
    const { logger, lines } = capturingLogger();
    const all = await writeSnapshot(path.join(root, 'repo'), ID, [{ source: 'app', type: 'tree', from: source }], logger);
    await restoreToDir(all, path.join(root, 'plain'));
    await restoreToDir(all, path.join(root, 'owned'), { preserveOwner: true });
    expect((await fsp.stat(path.join(root, 'plain', 'app', 'a.txt'))).uid).toBe(process.getuid!());
    expect((await fsp.stat(path.join(root, 'owned', 'app', 'a.txt'))).uid).toBe(1234);
    expect(await fsp.readlink(path.join(root, 'plain', 'app', 'abs'))).toBe('etc/hostname');
    expect(lines).toContainEqual({ level: 'warn', msg: `backupRoot: ${ID}/app.tar: 1 absolute symlink(s) rewritten to point inside the restored tree` });
  });
});

describe('the free-space check', () => {
  it('refuses what cannot fit, measured where the target will be', async () => {
    const deep = path.join(root, 'not', 'there', 'yet');
    const { bavail, bsize } = await fsp.statfs(root);
    const free = bavail * bsize;
    const err = await checkFreeSpace(deep, free * 2 + 1e12).catch((e: BackupError) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect((err as BackupError).code).toBe('E_RESTORE');
    expect((err as BackupError).message).toMatch(new RegExp(`^not enough space at ${root}: the restore needs ${free * 2 + 1e12} bytes, \\d+ are free; nothing was restored$`));
    expect((err as BackupError).details.needed).toBe(free * 2 + 1e12);
    await expect(checkFreeSpace(deep, 1024)).resolves.toBeUndefined();
    await expect(fsp.access(path.join(root, 'not'))).rejects.toThrow();
  });
});

describe('before anything is written', () => {
  it('refuses a restore whose artifacts together cannot fit, though each alone could; DIR is not made', async () => {
    const { bavail, bsize } = await fsp.statfs(root);
    const each = bavail * bsize;
    const all = (await readers()).map((r) => Object.assign(Object.create(r) as ArtifactReader, { artifact: { ...r.artifact, rawBytes: each } }));
    const err = await restoreToDir(all, target).catch((e: BackupError) => e);
    expect(err).toMatchObject({ code: 'E_RESTORE', message: expect.stringMatching(/^not enough space at /) });
    expect((err as BackupError).details.needed).toBe(2 * each);
    await expect(fsp.access(target)).rejects.toThrow();
  });

  it('restoring no artifact at all makes DIR and puts nothing in it', async () => {
    expect(await restoreToDir([], target)).toEqual([]);
    expect(await fsp.readdir(target)).toEqual([]);
  });

  it('a DIR nothing can be created in fails with the system error, DIR as it was', async () => {
    await fsp.mkdir(target);
    const unwritable = await makeUnwritable(target);
    try {
      const err = await restoreToDir(await readers(), target).catch((e: NodeJS.ErrnoException) => e);
      expect(['EPERM', 'EACCES']).toContain((err as NodeJS.ErrnoException).code);
    } finally {
      await unwritable.undo();
    }
    expect(await fsp.readdir(target)).toEqual([]);
  });

  it('warns of rewritten links only when there were some', async () => {
    const { logger, lines } = capturingLogger();
    const all = await writeSnapshot(path.join(root, 'repo'), ID, [{ source: 'app', type: 'tree', from: source }], logger);
    await restoreToDir(all, target);
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('a corrupt tree archive is told as an integrity failure of that artifact, nothing restored', async () => {
    const all = await readers();
    const tar = path.join(root, 'repo', 'snapshots', ID, 'app.tar');
    const body = await fsp.readFile(tar);
    body[600] = body[600]! ^ 0xff;
    await fsp.writeFile(tar, body);
    const err = await restoreToDir(all, target).catch((e: BackupError) => e);
    expect(err).toMatchObject({ code: 'E_INTEGRITY', message: expect.stringContaining(`backupRoot: ${ID}/app.tar: sha256 mismatch`) });
    await expect(fsp.access(target)).rejects.toThrow();
  });
});

describe('restore --path', () => {
  it('restores only the entries at or under the paths, a file artifact by its name, and leaves sources with nothing picked alone', async () => {
    await restoreToDir(await readers(), target, { paths: ['sub/new.txt'] });
    expect(await tree(target)).toEqual({ app: '/', 'app/sub': '/', 'app/sub/new.txt': 'new' });
    const second = path.join(root, 'second');
    await restoreToDir(await readers(), second, { paths: ['db.sql', 'a.txt'] });
    expect(await tree(second)).toEqual({ app: '/', 'app/a.txt': 'new a', db: '/', 'db/db.sql': 'SELECT 1;\n' });
  });

  it('a path that matches nothing fails naming it, and nothing is written', async () => {
    const err = await restoreToDir(await readers(), target, { paths: ['sub/new.txt', 'nope'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackupError);
    expect(err).toMatchObject({ code: 'E_NOT_FOUND', message: expect.stringContaining('--path "nope"') });
    expect(await fsp.stat(target).catch(() => undefined)).toBeUndefined();
  });

  it('with --force replaces only the picked paths in a non-empty DIR/<source>', async () => {
    await fsp.mkdir(path.join(target, 'app', 'sub'), { recursive: true });
    await fsp.writeFile(path.join(target, 'app', 'a.txt'), 'mine a');
    await fsp.writeFile(path.join(target, 'app', 'keep.txt'), 'keep');
    await fsp.writeFile(path.join(target, 'app', 'sub', 'new.txt'), 'old');
    await fsp.writeFile(path.join(target, 'app', 'sub', 'other.txt'), 'other');
    await restoreToDir(await readers(), target, { paths: ['sub/new.txt'], force: true });
    expect(await tree(path.join(target, 'app'))).toEqual({ 'a.txt': 'mine a', 'keep.txt': 'keep', sub: '/', 'sub/new.txt': 'new', 'sub/other.txt': 'other' });
    // A picked folder that is missing at the target arrives whole.
    await fsp.rm(path.join(target, 'app', 'sub'), { recursive: true });
    await restoreToDir(await readers(), target, { paths: ['sub'], force: true });
    expect(await tree(path.join(target, 'app'))).toEqual({ 'a.txt': 'mine a', 'keep.txt': 'keep', sub: '/', 'sub/new.txt': 'new' });
  });

  it('refuses a link or a file where a folder above a picked path should be, writing nothing through it', async () => {
    const outside = path.join(root, 'outside');
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'new.txt'), 'precious');
    await fsp.mkdir(path.join(target, 'app'), { recursive: true });
    await fsp.writeFile(path.join(target, 'app', 'keep.txt'), 'keep');
    await fsp.symlink(outside, path.join(target, 'app', 'sub'));
    await expect(restoreToDir(await readers(), target, { paths: ['sub/new.txt'], force: true })).rejects.toMatchObject({
      code: 'E_RESTORE',
      message: expect.stringContaining(`${path.join(target, 'app', 'sub')} is a symbolic link`),
    });
    expect(await fsp.readFile(path.join(outside, 'new.txt'), 'utf8')).toBe('precious');
    await fsp.rm(path.join(target, 'app', 'sub'));
    await fsp.writeFile(path.join(target, 'app', 'sub'), 'a file');
    await expect(restoreToDir(await readers(), target, { paths: ['sub/new.txt'], force: true })).rejects.toMatchObject({
      code: 'E_RESTORE',
      message: expect.stringContaining('is not a folder'),
    });
  });
});

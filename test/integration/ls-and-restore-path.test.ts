/**
 * `ls` (the entries inside a snapshot, read through the verified readers, never extracted) and
 * `restore --path` (only the picked entries, every safety check of restore kept), through the
 * real CLI on a gpg-encrypted repository with a local destination.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { expectSchema } from '../helpers/json-schemas.js';
import { logMessages, runCli, tempDir, writeRc } from '../helpers/cli.js';

const PASS = 'ls and restore --path passphrase 7';
const env = { BACKUP_ENCRYPTION_PASSPHRASE: PASS };
let work: string;
let snapshot: string;
/** The data folder as ls shows it and restore writes it: its absolute path without the leading slash. */
let data: string;

const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = env) => runCli(args, { cwd: work, env: extraEnv });

beforeAll(async () => {
  work = await tempDir();
  await writeTree(path.join(work, 'data'), {
    'a.txt': 'alpha\n',
    sub: { 'b.txt': 'bravo!\n', deep: { 'c.txt': 'charlie\n' } },
    other: { 'd.txt': 'delta\n' },
    link: { symlink: 'a.txt' },
  });
  await fsp.chmod(path.join(work, 'data/sub/b.txt'), 0o640);
  await fsp.utimes(path.join(work, 'data/a.txt'), new Date('2026-01-02T03:04:05Z'), new Date('2026-01-02T03:04:05Z'));
  data = path.join(work, 'data').slice(1);
  await writeRc(
    work,
    `backupRoot: ./repo
encryption: { use: gpg, passphrase: "\${BACKUP_ENCRYPTION_PASSPHRASE}" }
sources:
  configs: { use: files, paths: [./data] }
  notes: { use: command, command: "printf 'twelve bytes'" }
destinations:
  drive: { use: local, path: ./drive }
`,
  );
  const r = await cli(['run', '--json']);
  expect(r.code, r.stderr).toBe(0);
  snapshot = r.json().snapshot;
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('ls', () => {
  it('lists every entry of an encrypted snapshot: type, mode, size, mtime, link target; a file artifact by its name', async () => {
    const r = await cli(['ls', 'latest', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json();
    expectSchema('ls', doc);
    expect(doc.snapshot).toBe(snapshot);
    const byPath = new Map(doc.entries.map((e: { source: string; path: string }) => [`${e.source}/${e.path}`, e]));
    expect(byPath.get(`configs/${data}/a.txt`)).toEqual({ source: 'configs', path: `${data}/a.txt`, type: 'file', mode: 0o644, size: 6, mtime: '2026-01-02T03:04:05.000Z' });
    expect(byPath.get(`configs/${data}/sub/b.txt`)).toMatchObject({ type: 'file', mode: 0o640, size: 7 });
    expect(byPath.get(`configs/${data}/sub`)).toMatchObject({ type: 'directory', size: 0 });
    expect(byPath.get(`configs/${data}/link`)).toMatchObject({ type: 'symlink', linkTarget: 'a.txt' });
    const notes = doc.entries.filter((e: { source: string }) => e.source === 'notes');
    expect(notes).toEqual([{ source: 'notes', path: expect.any(String), type: 'file', mode: null, size: 12, mtime: null }]);
    // Never extracted: ls leaves no folder behind.
    expect((await fsp.readdir(work)).sort()).toEqual(['.sutazai-backuprc', 'data', 'drive', 'repo']);
    const text = await cli(['ls', snapshot.slice(0, 16), '--source', 'configs']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`-rw-r-----             7`);
    expect(text.stdout).toMatch(new RegExp(`^lrwxrwxrwx .* configs/${data}/link -> a\\.txt$`, 'm'));
    expect(text.stdout).not.toContain('notes/');
  });

  it('filters to a PATH (leading slash or not) from a destination; a PATH that matches nothing is exit 1 naming it', async () => {
    const r = await cli(['ls', 'latest', `/${data}/sub/`, '--from', 'drive', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().repository).toBe('destinations.drive');
    expectSchema('ls', r.json());
    expect(r.json().entries.map((e: { path: string }) => e.path).sort()).toEqual([`${data}/sub`, `${data}/sub/b.txt`, `${data}/sub/deep`, `${data}/sub/deep/c.txt`]);
    const none = await cli(['ls', 'latest', `${data}/su`]);
    expect(none.code).toBe(1);
    expect(logMessages(none.stderr)).toContain(`matches "${data}/su"`);
  });

  it('needs the passphrase (exit 2, naming the variable), and refuses a damaged artifact (exit 1)', async () => {
    const bare = await runCli(['ls', 'latest'], { cwd: work, env: { BACKUP_ENCRYPTION_PASSPHRASE: '' } });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('BACKUP_ENCRYPTION_PASSPHRASE');
    const copy = await tempDir();
    try {
      await fsp.cp(work, copy, { recursive: true });
      const folder = path.join(copy, 'repo/snapshots', snapshot);
      const tree = (await fsp.readdir(folder)).find((f) => f.startsWith('configs'))!;
      const bytes = await fsp.readFile(path.join(folder, tree));
      bytes[bytes.length >> 1] ^= 0xff;
      await fsp.writeFile(path.join(folder, tree), bytes);
      const r = await runCli(['ls', 'latest', '--source', 'configs'], { cwd: copy, env });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/sha256|checksum|integrity/i);
      expect(r.stdout).toBe('');
    } finally {
      await fsp.rm(copy, { recursive: true, force: true });
    }
  });
});

describe('restore --path', () => {
  it('restores only the entries at or under each path, with the folders above them', async () => {
    const to = path.join(work, 'picked');
    const r = await cli(['restore', 'latest', '--to', to, '--path', `${data}/sub/deep`, '--path', `/${data}/a.txt`]);
    expect(r.code, r.stderr).toBe(0);
    const root = path.join(to, 'configs', data);
    expect(await fsp.readFile(path.join(root, 'sub/deep/c.txt'), 'utf8')).toBe('charlie\n');
    expect(await fsp.readFile(path.join(root, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect((await fsp.readdir(root)).sort()).toEqual(['a.txt', 'sub']);
    expect(await fsp.readdir(path.join(root, 'sub'))).toEqual(['deep']);
    // The command source had no picked entry: nothing of it is written.
    expect(await fsp.readdir(to)).toEqual(['configs']);
    await fsp.rm(to, { recursive: true });
  });

  it('a path that matches nothing is exit 1 naming it, and nothing is written', async () => {
    const to = path.join(work, 'nothing');
    const r = await cli(['restore', 'latest', '--to', to, '--path', `${data}/a.txt`, '--path', `${data}/missing`]);
    expect(r.code).toBe(1);
    expect(logMessages(r.stderr)).toContain(`--path "${data}/missing"`);
    await expect(fsp.stat(to)).rejects.toThrow(/ENOENT/);
  });

  it('with --force replaces only the picked paths, keeps the rest, and never writes through a link', async () => {
    const to = path.join(work, 'forced');
    const root = path.join(to, 'configs', data);
    await writeTree(root, { 'a.txt': 'changed\n', 'mine.txt': 'kept\n', sub: { 'b.txt': 'changed too\n' } });
    const refused = await cli(['restore', 'latest', '--to', to, '--path', `${data}/a.txt`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not empty/);
    const r = await cli(['restore', 'latest', '--to', to, '--path', `${data}/a.txt`, '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(await fsp.readFile(path.join(root, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(await fsp.readFile(path.join(root, 'mine.txt'), 'utf8')).toBe('kept\n');
    expect(await fsp.readFile(path.join(root, 'sub/b.txt'), 'utf8')).toBe('changed too\n');
    // A folder above the picked path replaced by a link: the restore refuses rather than follow it.
    const elsewhere = path.join(work, 'elsewhere');
    await fsp.mkdir(elsewhere);
    await fsp.rm(path.join(root, 'sub'), { recursive: true });
    await fsp.symlink(elsewhere, path.join(root, 'sub'));
    const link = await cli(['restore', 'latest', '--to', to, '--path', `${data}/sub/deep`, '--force']);
    expect(link.code).toBe(1);
    expect(link.stderr).toMatch(/symbolic link/);
    expect(await fsp.readdir(elsewhere)).toEqual([]);
    await fsp.rm(to, { recursive: true });
  });

  it('--path with --into is a usage error', async () => {
    const r = await cli(['restore', 'latest', '--into', 'postgres://localhost/x', '--source', 'configs', '--path', 'a']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--path works with --to DIR only');
  });
});

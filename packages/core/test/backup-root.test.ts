/**
 * backupRoot is refused when someone else could tamper with it before a run: another user owns
 * it or a folder above it, or can write there, or planted a link at one of the tool's own names.
 * The other user is uid 1234 (the tests run as root, as CI does); each refusal names the path
 * and the fix, and nothing is created.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkBackupRoot, ownFolder } from '../src/backup-root.js';

const OTHER = 1234;
const uid = process.getuid!();

let base: string;
beforeEach(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-backup-root-'));
});
afterEach(async () => {
  await fsp.rm(base, { recursive: true, force: true });
});

async function refusal(root: string): Promise<string> {
  const err = await checkBackupRoot(root).then(
    () => undefined,
    (e: { code: string; message: string }) => e,
  );
  expect(err, `${root} was accepted`).toBeDefined();
  expect(err!.code).toBe('E_CONFIG');
  return err!.message;
}

describe('checkBackupRoot', () => {
  it('creates a missing backupRoot private, and accepts one of its own', async () => {
    const root = path.join(base, 'a', 'backups');
    await checkBackupRoot(root);
    expect((await fsp.stat(root)).mode & 0o777).toBe(0o700);
    for (const name of ['state', 'staging', 'snapshots']) await fsp.mkdir(path.join(root, name), { mode: 0o700 });
    for (const name of ['lock', 'history.jsonl', 'notifications.json']) await fsp.writeFile(path.join(root, 'state', name), '', { mode: 0o600 });
    await expect(checkBackupRoot(root)).resolves.toBeUndefined();
  });

  it("refuses a backupRoot of another user, or one others can write to, naming the fix", async () => {
    const root = path.join(base, 'backups');
    await fsp.mkdir(root, { mode: 0o700 });
    await fsp.chown(root, OTHER, OTHER);
    expect(await refusal(root)).toBe(
      `backupRoot: backupRoot ${root} belongs to uid ${OTHER}, not to this user (uid ${uid}): its owner could plant links that make a run write or delete elsewhere; chown -R ${uid} ${root}, or choose a backupRoot of your own`,
    );
    await fsp.chown(root, uid, uid);
    for (const [mode, who] of [
      [0o770, 'its group'],
      [0o702, 'others'],
      [0o777, 'its group and others'],
    ] as const) {
      await fsp.chmod(root, mode);
      expect(await refusal(root)).toBe(
        `backupRoot: backupRoot ${root} is writable by ${who} (mode ${mode.toString(8).padStart(4, '0')}): they could plant links that make a run write or delete elsewhere; chmod go-w ${root}`,
      );
    }
    await fsp.chmod(root, 0o755);
    await expect(checkBackupRoot(root)).resolves.toBeUndefined();
  });

  it("refuses a link, a file or another user's folder at one of its own folders", async () => {
    const root = path.join(base, 'backups');
    await fsp.mkdir(root, { mode: 0o700 });
    const elsewhere = path.join(base, 'elsewhere');
    await fsp.mkdir(elsewhere);
    await fsp.symlink(elsewhere, path.join(root, 'state'));
    expect(await refusal(root)).toBe(`${path.join(root, 'state')} is a symbolic link: the tool never follows links inside its own folders (one may have been planted); remove it`);
    await fsp.rm(path.join(root, 'state'));
    await fsp.writeFile(path.join(root, 'staging'), 'a file');
    expect(await refusal(root)).toBe(`backupRoot: ${path.join(root, 'staging')} is not a folder; remove it; the tool keeps its staging there`);
    await fsp.rm(path.join(root, 'staging'));
    await fsp.mkdir(path.join(root, 'snapshots'), { mode: 0o700 });
    await fsp.chown(path.join(root, 'snapshots'), OTHER, OTHER);
    expect(await refusal(root)).toMatch(new RegExp(`^backupRoot: ${path.join(root, 'snapshots')} belongs to uid ${OTHER}, not to this user`));
    await fsp.chown(path.join(root, 'snapshots'), uid, uid);
    await fsp.chmod(path.join(root, 'snapshots'), 0o770);
    expect(await refusal(root)).toMatch(/snapshots is writable by its group \(mode 0770\)/);
  });

  it("refuses a link, a folder or another user's file at one of its state files", async () => {
    const root = path.join(base, 'backups');
    const state = path.join(root, 'state');
    await fsp.mkdir(state, { recursive: true, mode: 0o700 });
    await fsp.symlink('/etc/passwd', path.join(state, 'lock'));
    expect(await refusal(root)).toBe(`${path.join(state, 'lock')} is a symbolic link: the tool never follows links inside its own folders (one may have been planted); remove it`);
    await fsp.rm(path.join(state, 'lock'));
    await fsp.mkdir(path.join(state, 'history.jsonl'));
    expect(await refusal(root)).toBe(`backupRoot: ${path.join(state, 'history.jsonl')} is not a regular file; remove it`);
    await fsp.rmdir(path.join(state, 'history.jsonl'));
    await fsp.writeFile(path.join(state, 'notifications.json'), '{}', { mode: 0o600 });
    await fsp.chown(path.join(state, 'notifications.json'), OTHER, OTHER);
    expect(await refusal(root)).toMatch(new RegExp(`^backupRoot: ${path.join(state, 'notifications.json')} belongs to uid ${OTHER}`));
  });

  it('refuses a backupRoot below a folder another user owns or can write to; a sticky one (/tmp) is fine', async () => {
    const theirs = path.join(base, 'theirs');
    await fsp.mkdir(theirs, { mode: 0o755 });
    await fsp.chown(theirs, OTHER, OTHER);
    const root = path.join(theirs, 'deep', 'backups');
    expect(await refusal(root)).toBe(
      `backupRoot: backupRoot ${root} lies in ${theirs}, which belongs to uid ${OTHER}: its owner could replace backupRoot; move backupRoot to a folder that only root or this user can change`,
    );
    await expect(fsp.access(path.join(theirs, 'deep'))).rejects.toThrow();

    const shared = path.join(base, 'shared');
    await fsp.mkdir(shared);
    await fsp.chmod(shared, 0o775);
    expect(await refusal(path.join(shared, 'backups'))).toBe(
      `backupRoot: backupRoot ${path.join(shared, 'backups')} lies in ${shared}, which its group can write to (mode 0775): they could replace backupRoot; chmod go-w ${shared}, or move backupRoot to a folder that only root or this user can change`,
    );
    await fsp.chmod(shared, 0o1777);
    await expect(checkBackupRoot(path.join(shared, 'backups'))).resolves.toBeUndefined();
  });

  it('checks the folders above where a link at backupRoot really leads', async () => {
    const theirs = path.join(base, 'theirs');
    await fsp.mkdir(path.join(theirs, 'real'), { recursive: true, mode: 0o755 });
    await fsp.chmod(path.join(theirs, 'real'), 0o700);
    await fsp.chown(theirs, OTHER, OTHER);
    const root = path.join(base, 'backups');
    await fsp.symlink(path.join(theirs, 'real'), root);
    expect(await refusal(root)).toMatch(new RegExp(`^backupRoot: backupRoot ${path.join(theirs, 'real')} lies in ${theirs}, which belongs to uid ${OTHER}`));
  });
});

describe('ownFolder', () => {
  it('makes the chain of folders private, and never goes through a link', async () => {
    const root = path.join(base, 'backups');
    const dir = await ownFolder(root, 'staging', 'snapshots');
    expect(dir).toBe(path.join(root, 'staging', 'snapshots'));
    expect((await fsp.stat(dir)).mode & 0o777).toBe(0o700);
    await fsp.symlink(base, path.join(root, 'state'));
    await expect(ownFolder(root, 'state')).rejects.toThrow(/state is a symbolic link/);
  });
});

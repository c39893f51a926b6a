/**
 * backupRoot belongs to the tool. Whoever else can write to it (a service user who owns the
 * folder it lives in, a folder under /tmp) could plant links there before a root run: `staging`
 * pointing at another folder (the run would delete what is in it), `state/history.jsonl` at
 * another file (the run would append to it and chmod it). The tool refuses such a backupRoot
 * (exit 2, naming the folder and the fix), never follows a link at one of its own names, and
 * deletes only what it made in staging/. The attacker's steps run as an unprivileged user (nobody).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { logMessages, REPO_ROOT, runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';
import { listTree } from '../helpers/crafted-repo.js';

const NOBODY = 65534;
const pausePlugin = path.join(REPO_ROOT, 'test/fixtures/pause-plugin.mjs');

let work: string;
let elsewhere: string;
let victim: string;

/** Runs a shell line as the unprivileged attacker. */
function asAttacker(line: string): void {
  execFileSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', 'sh', '-c', line], { cwd: work, stdio: 'pipe' });
}

/** What the attacks aim at must be exactly as it was: names, content, modes. */
async function snapshotOfTargets(): Promise<string[]> {
  const out = (await listTree(elsewhere)).map((p) => `elsewhere/${p}`);
  const st = await fsp.stat(victim);
  out.push(`victim ${(st.mode & 0o7777).toString(8)} ${st.uid} ${await fsp.readFile(victim, 'utf8')}`);
  return out;
}

beforeEach(async () => {
  work = await tempDir('sutazai-backup-root-');
  // The attacker may pass through the test's folder, not write to it.
  await fsp.chmod(work, 0o711);
  elsewhere = path.join(work, 'elsewhere');
  await writeTree(elsewhere, { 'keep.txt': 'not the tool\'s\n', 'snapshots': { 'x.db': 'data\n' } });
  victim = path.join(work, 'victim.conf');
  await fsp.writeFile(victim, 'root: only\n', { mode: 0o644 });
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n' });
});
afterEach(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

const rc = (backupRoot: string, extra = '') => writeRc(work, `backupRoot: ${backupRoot}\nsources:\n  configs: { use: files, paths: [./data] }\n${extra}`);

describe('a backupRoot others can change is refused (exit 2), and nothing is followed', () => {
  it('in a folder a service user owns, with links that user planted', async () => {
    const svc = path.join(work, 'svc');
    await fsp.mkdir(svc, { mode: 0o755 });
    await fsp.chown(svc, NOBODY, NOBODY);
    asAttacker(`mkdir -p svc/backups/state && ln -s ${elsewhere} svc/backups/staging && ln -s ${victim} svc/backups/state/history.jsonl`);
    await rc('./svc/backups');
    const before = await snapshotOfTargets();

    for (const args of [['run'], ['prune']]) {
      const r = await runCli(args, { cwd: work });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(logMessages(r.stderr), args.join(' ')).toContain(`backupRoot: backupRoot ${svc}/backups lies in ${svc}, which belongs to uid ${NOBODY}: its owner could replace backupRoot; move backupRoot to a folder that only root or this user can change`);
    }
    // status reads the history first: the link there is refused, not read through.
    const status = await runCli(['status', '--notify'], { cwd: work });
    expect(status.code).toBe(2);
    expect(logMessages(status.stderr)).toContain(`${svc}/backups/state/history.jsonl is a symbolic link`);
    // verify takes no lock and finds nothing to verify there; it must not write either.
    expect((await runCli(['verify'], { cwd: work })).code).toBe(1);
    expect(await snapshotOfTargets()).toEqual(before);
  });

  it('that others can write to, even sticky', async () => {
    const shared = path.join(work, 'shared');
    await fsp.mkdir(shared);
    await fsp.chmod(shared, 0o1777);
    asAttacker(`ln -s ${elsewhere} shared/staging`);
    await rc('./shared');
    const before = await snapshotOfTargets();
    const r = await runCli(['run'], { cwd: work });
    expect(r.code, r.stderr).toBe(2);
    expect(logMessages(r.stderr)).toContain(`backupRoot: backupRoot ${shared} is writable by its group and others (mode 1777): they could plant links that make a run write or delete elsewhere; chmod go-w ${shared}`);
    expect(await snapshotOfTargets()).toEqual(before);
  });

  it('in a folder others can write to', async () => {
    const open = path.join(work, 'open');
    await fsp.mkdir(open);
    await fsp.chmod(open, 0o777);
    await rc('./open/backups');
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(logMessages(r.stderr)).toContain(`backupRoot ${open}/backups lies in ${open}, which its group and others can write to (mode 0777): they could replace backupRoot; chmod go-w ${open}`);
    expect(existsSync(path.join(open, 'backups'))).toBe(false);
  });

  it('owned by another user', async () => {
    const theirs = path.join(work, 'theirs');
    await fsp.mkdir(theirs, { mode: 0o700 });
    await fsp.chown(theirs, NOBODY, NOBODY);
    await rc('./theirs');
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(logMessages(r.stderr)).toContain(`backupRoot: backupRoot ${theirs} belongs to uid ${NOBODY}, not to this user (uid 0): its owner could plant links that make a run write or delete elsewhere; chown -R 0 ${theirs}, or choose a backupRoot of your own`);
  });
});

describe('links inside a backupRoot of our own are refused, never followed', () => {
  let repo: string;
  beforeEach(async () => {
    repo = path.join(work, 'repo');
    await rc('./repo');
    const first = await runCli(['run'], { cwd: work });
    expect(first.code, first.stderr).toBe(0);
  });

  for (const [name, target] of [['staging', 'elsewhere'], ['snapshots', 'elsewhere'], ['state/history.jsonl', 'victim'], ['state/notifications.json', 'victim'], ['state/lock', 'victim']] as const) {
    it(`${name} -> ${target}`, async () => {
      const link = path.join(repo, name);
      await fsp.rm(link, { recursive: true, force: true });
      await fsp.symlink(target === 'victim' ? victim : elsewhere, link);
      const before = await snapshotOfTargets();
      const r = await runCli(['run'], { cwd: work });
      expect(r.code, r.stderr).toBe(2);
      expect(logMessages(r.stderr)).toContain(`${link} is a symbolic link: the tool never follows links inside its own folders (one may have been planted); remove it`);
      // Commands that do not take the lock write their history through the same checks.
      await runCli(['verify'], { cwd: work });
      await runCli(['status', '--notify'], { cwd: work });
      expect(await snapshotOfTargets()).toEqual(before);
      expect(await fsp.readlink(link)).toBe(target === 'victim' ? victim : elsewhere);
    });
  }
});

describe('staging/ holds what the tool made there; the rest is reported, never deleted', () => {
  it('a backupRoot pointed at a folder with content of its own', async () => {
    const repo = path.join(work, 'existing');
    const foreign = {
      'notes.txt': 'mine\n',
      snapshots: { '20200101T000000Z-default-abcd': { 'important.db': 'precious\n' } },
      'work-20200101T000000Z-default-abcd': { 'x.bin': 'x\n' },
      'scratch-mine': { 'y.txt': 'y\n' },
    };
    await writeTree(path.join(repo, 'staging'), foreign);
    await fsp.chmod(repo, 0o700);
    await rc('./existing');
    const before = await listTree(path.join(repo, 'staging'));
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['run'], { cwd: work });
      expect(r.code, r.stderr).toBe(0);
      expect(logMessages(r.stderr)).toMatch(new RegExp(`${repo}/staging holds 4 entries this tool did not make, left alone: .*notes\\.txt`));
    }
    expect(await listTree(path.join(repo, 'staging'))).toEqual(before);
    expect(await fsp.readFile(path.join(repo, 'staging', 'snapshots', '20200101T000000Z-default-abcd', 'important.db'), 'utf8')).toBe('precious\n');
  });

  it("what a killed run staged is removed by the next run, the rest stays", async () => {
    const repo = path.join(work, 'repo');
    await writeTree(path.join(repo, 'staging'), { 'notes.txt': 'mine\n' });
    await fsp.chmod(repo, 0o700);
    const marker = path.join(work, 'paused');
    await rc('./repo', `plugins:\n  - { use: ${pausePlugin}, stage: archive, marker: ${marker} }\n`);
    const { child, result } = startCli(['run'], { cwd: work });
    while (!existsSync(marker)) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await result;
    const left = (await fsp.readdir(path.join(repo, 'staging'))).filter((n) => n.startsWith('work-'));
    expect(left).toHaveLength(1);
    const id = left[0]!.slice('work-'.length);
    expect(existsSync(path.join(repo, 'staging', 'snapshots', id))).toBe(true);

    await rc('./repo');
    const next = await runCli(['run'], { cwd: work });
    expect(next.code, next.stderr).toBe(0);
    expect((await fsp.readdir(path.join(repo, 'staging'))).sort()).toEqual(['notes.txt', 'snapshots']);
    expect(await fsp.readdir(path.join(repo, 'staging', 'snapshots'))).toEqual([]);
    expect(logMessages(next.stderr)).toMatch(/holds an entry this tool did not make, left alone: .*notes\.txt/);
  });
});

describe('a local destination folder', () => {
  it('a link planted below it is refused, not written through', async () => {
    const drive = path.join(work, 'drive');
    await fsp.mkdir(path.join(drive, 'h1'), { recursive: true });
    await fsp.symlink(elsewhere, path.join(drive, 'h1', 'snapshots'));
    await rc('./repo', `host: h1\ndestinations:\n  drive: { use: local, path: ./drive }\n`);
    const before = await snapshotOfTargets();
    const r = await runCli(['run', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(1);
    expect(r.json().errors).toEqual([
      expect.objectContaining({ stage: 'replicate', plugin: 'destinations.drive', message: expect.stringContaining(`${drive}/h1/snapshots is a symbolic link`) }),
    ]);
    expect(await snapshotOfTargets()).toEqual(before);
    // Nor is it listed through.
    const list = await runCli(['list', '--from', 'drive'], { cwd: work });
    expect(list.code).toBe(2);
    expect(logMessages(list.stderr)).toContain(`${drive}/h1/snapshots is a symbolic link`);
  });
});

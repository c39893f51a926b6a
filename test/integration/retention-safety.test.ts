/**
 * Nothing retention keeps is ever deleted, and nothing the tool did not create: each test makes
 * the mistake a user (or a disk) makes, through the real CLI, and counts what is left.
 * Days of runs are scripted with SUTAZAI_BACKUP_NOW.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeTree } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, logMessages, runCli, tempDir, writeRc, type CliResult } from '../helpers/cli.js';

const HOST = 'it-host';
const PASSPHRASE = `right-${randomBytes(8).toString('hex')}`;
const WRONG = `wrong-${randomBytes(8).toString('hex')}`;
const MARKER = '.sutazai-incomplete.json';

let work: string;
beforeAll(async () => {
  work = await tempDir('sutazai-retention-safety-');
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** 2026-11-<day>T<hour>:<minute>Z */
const at = (day: number, hour = 2, minute = 0) => new Date(Date.UTC(2026, 10, day, hour, minute)).toISOString();

interface Project {
  dir: string;
  rc(extra: string): Promise<void>;
  cli(args: string[], now: string, env?: NodeJS.ProcessEnv): Promise<CliResult>;
  /** A run that must succeed; its snapshot id. */
  run(now: string, args?: string[]): Promise<string>;
  /** The snapshots (folders holding a manifest) at backupRoot or at the drive. */
  held(where: 'backupRoot' | 'drive'): Promise<string[]>;
  snapshotDir(where: 'backupRoot' | 'drive', id: string): string;
}

async function project(name: string, extra: string): Promise<Project> {
  const dir = path.join(work, name);
  await writeTree(path.join(dir, 'data'), { 'app.yaml': 'model: llama3\n', deep: { 'notes.txt': 'keep me\n' } });
  const p: Project = {
    dir,
    async rc(more) {
      await writeRc(dir, `backupRoot: ./backups\nhost: ${HOST}\nsources:\n  configs: { use: files, paths: [./data] }\n${more}`);
    },
    cli(args, now, env = {}) {
      return runCli(args, { cwd: dir, env: { SUTAZAI_BACKUP_NOW: now, BACKUP_ENCRYPTION_PASSPHRASE: PASSPHRASE, ...env } });
    },
    async run(now, args = []) {
      const r = await p.cli(['run', '--json', ...args], now);
      expect(r.code, r.stderr).toBe(0);
      return r.json().snapshot as string;
    },
    snapshotDir(where, id) {
      return where === 'backupRoot' ? path.join(dir, 'backups', 'snapshots', id) : path.join(dir, 'drive', HOST, 'snapshots', id);
    },
    async held(where) {
      const root = path.dirname(p.snapshotDir(where, 'x'));
      const names = existsSync(root) ? await fsp.readdir(root) : [];
      return names.filter((n) => existsSync(path.join(root, n, 'manifest.json'))).sort();
    },
  };
  await p.rc(extra);
  return p;
}

const DRIVE = 'destinations:\n  drive: { use: local, path: ./drive }\n';
const ENCRYPTED = 'encryption: { use: gpg, passphrase: "${BACKUP_ENCRYPTION_PASSPHRASE}" }\n';

/** Flips one byte of a manifest: a character inside its first sha256, so the JSON still parses. */
async function flipSha256(manifestFile: string): Promise<void> {
  const text = await fsp.readFile(manifestFile, 'utf8');
  const field = /"sha256":\s*"/.exec(text)!;
  const i = field.index + field[0].length + 10;
  await fsp.writeFile(manifestFile, text.slice(0, i) + (text[i] === '0' ? '1' : '0') + text.slice(i + 1));
}

const removedIds = (result: { removed: { id: string }[] }) => result.removed.map((d) => d.id);

describe('a failed verify never deletes history', () => {
  it('six encrypted snapshots, one verify with a mistyped passphrase: the next run and prune delete nothing at backupRoot or the drive; status names the suspects; the right passphrase clears them', async () => {
    const p = await project('wrong-passphrase', `retention: { last: 100 }\n${ENCRYPTED}${DRIVE}`);
    const ids: string[] = [];
    for (let day = 1; day <= 6; day++) ids.push(await p.run(at(day)));
    expect(await p.held('backupRoot')).toEqual(ids);
    expect(await p.held('drive')).toEqual(ids);

    for (const from of [['--from', 'drive'], []]) {
      const verify = await p.cli(['verify', '--all', ...from, '--json'], at(6, 3), { BACKUP_ENCRYPTION_PASSPHRASE: WRONG });
      expect(verify.code).toBe(1);
      const result = verify.json();
      expect(result.snapshots.map((s: any) => [s.id, s.ok, s.failure.kind])).toEqual(ids.map((id) => [id, false, 'authentication']));
      expect(result.snapshots[0].failure.error).toMatch(/its HMAC does not match/);
    }

    const next = await p.run(at(7));
    expect(await p.held('backupRoot')).toEqual([...ids, next]);
    expect(await p.held('drive')).toEqual([...ids, next]);

    const prune = await p.cli(['prune', '--json'], at(7, 4));
    expect(prune.code, prune.stderr).toBe(0);
    for (const r of prune.json()) {
      expect(r, r.repository).toMatchObject({ dryRun: false, removed: [], incomplete: [], foreign: [] });
      expect(r.suspects.map((s: any) => [s.id, s.kind])).toEqual(ids.map((id) => [id, 'authentication']));
    }
    expect(await p.held('drive')).toEqual([...ids, next]);

    const status = await p.cli(['status', '--json'], at(7, 5));
    expect(status.code).toBe(1);
    const health = status.json();
    const verification = health.checks.find((c: any) => c.name === 'verification');
    expect(verification).toMatchObject({ ok: false });
    expect(verification.detail).toMatch(/^12 suspect snapshot\(s\) failed verification \(kept; `sutazai-backup forget <ID> \[--from DEST\]` deletes one\)/);
    expect(health.suspects.map((s: any) => `${s.repository} ${s.id} ${s.kind}`).sort()).toEqual(
      [...ids.map((id) => `backupRoot ${id} authentication`), ...ids.map((id) => `destinations.drive ${id} authentication`)].sort(),
    );
    const text = await p.cli(['status'], at(7, 5));
    expect(text.stdout).toContain(`suspect ${ids[0]} at destinations.drive: authentication: the manifest cannot be trusted: its HMAC does not match`);

    for (const from of [['--from', 'drive'], []]) expect((await p.cli(['verify', '--all', ...from], at(7, 6))).code).toBe(0);
    const cleared = (await p.cli(['status', '--json'], at(7, 7))).json();
    expect(cleared.suspects).toEqual([]);
    expect(cleared.checks.find((c: any) => c.name === 'verification').ok).toBe(true);
  });

  it('one flipped byte in a manifest whose artifacts are intact: the snapshot is kept while the policy keeps it (a good one kept in its place), and goes only when the policy drops it', async () => {
    const p = await project('flipped-manifest', 'retention: { last: 2 }\n');
    const [, d2, d3] = [await p.run(at(1)), await p.run(at(2)), await p.run(at(3))];
    expect(await p.held('backupRoot')).toEqual([d2, d3]);
    await flipSha256(path.join(p.snapshotDir('backupRoot', d3!), 'manifest.json'));

    const verify = await p.cli(['verify', 'latest', '--json'], at(3, 3));
    expect(verify.code).toBe(1);
    expect(verify.json().snapshots[0]).toMatchObject({ id: d3, ok: false, failure: { kind: 'integrity' } });
    expect(verify.json().snapshots[0].failure.error).toMatch(/sha256 mismatch/);

    const dry = await p.cli(['prune', '--dry-run', '--json'], at(3, 4));
    expect(removedIds(dry.json()[0])).toEqual([]);
    const d4 = await p.run(at(4));
    // The plain policy keeps d4 and d3; with d3 a suspect, d2 is kept in its place.
    expect(await p.held('backupRoot')).toEqual([d2, d3, d4]);
    const status = (await p.cli(['status', '--json'], at(4, 1))).json();
    expect(status.suspects).toEqual([expect.objectContaining({ id: d3, repository: 'backupRoot', kind: 'integrity' })]);

    // A day later the policy itself drops d3 (and d2): prune removes them, and the suspect is gone.
    const d5 = await p.run(at(5));
    expect(await p.held('backupRoot')).toEqual([d4, d5]);
    const after = (await p.cli(['status', '--json'], at(5, 1))).json();
    expect(after.suspects).toEqual([]);
  });

  it('a read error at the drive (an artifact that cannot be read): nothing deleted, status says it was a read error', async () => {
    const p = await project('read-error', `retention: { last: 3 }\n${DRIVE}`);
    const ids = [await p.run(at(1)), await p.run(at(2)), await p.run(at(3))];
    const artifact = path.join(p.snapshotDir('drive', ids[1]!), 'configs.tar.zst');
    const saved = await fsp.readFile(artifact);
    // A directory where the file was: opening works, every read fails with EISDIR.
    await fsp.rm(artifact);
    await fsp.mkdir(artifact);

    const verify = await p.cli(['verify', '--all', '--from', 'drive', '--json'], at(3, 3));
    expect(verify.code).toBe(1);
    const failed = verify.json().snapshots.filter((s: any) => !s.ok);
    expect(failed).toEqual([expect.objectContaining({ id: ids[1], failure: expect.objectContaining({ kind: 'read', error: expect.stringMatching(/EISDIR/) }) })]);

    const d4 = await p.run(at(4));
    // Plain last 3 keeps ids[1..2] and d4; without the suspect, ids[0] too: nothing is removed at the drive.
    expect(await p.held('drive')).toEqual([...ids, d4]);
    expect(await p.held('backupRoot')).toEqual([...ids.slice(1), d4]);
    const status = await p.cli(['status'], at(4, 1));
    expect(status.stdout).toMatch(new RegExp(`suspect ${ids[1]} at destinations.drive: read: .*EISDIR`));

    // Repaired by hand, it verifies again and stops being a suspect.
    await fsp.rmdir(artifact);
    await fsp.writeFile(artifact, saved, { mode: 0o600 });
    expect((await p.cli(['verify', ids[1]!, '--from', 'drive'], at(4, 2))).code).toBe(0);
    expect((await p.cli(['status', '--json'], at(4, 3))).json().suspects).toEqual([]);
  });

  it('forget deletes a suspect on the user\'s word: one snapshot, one place, the full id only', async () => {
    const p = await project('forget', `retention: { last: 10 }\n${ENCRYPTED}${DRIVE}`);
    const ids = [await p.run(at(1)), await p.run(at(2))];
    await flipSha256(path.join(p.snapshotDir('drive', ids[0]!), 'manifest.json'));
    expect((await p.cli(['verify', '--all', '--from', 'drive'], at(2, 1))).code).toBe(1);

    for (const bad of ['latest', ids[0]!.slice(0, 12)]) {
      const r = await p.cli(['forget', bad, '--from', 'drive'], at(2, 2));
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/forget needs a full snapshot id/);
    }
    expect((await p.cli(['forget', ids[0]!, '--from', 'nowhere'], at(2, 2))).code).toBe(2);
    expect((await p.cli(['forget', '20261101T000000Z-default-0000', '--from', 'drive'], at(2, 2))).code).toBe(1);
    // Another process holds the run lock: forget waits its turn (75), like run and prune.
    const lock = path.join(p.dir, 'backups', 'state', 'lock');
    await fsp.writeFile(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString(), command: 'a test holding the lock' }));
    const locked = await p.cli(['forget', ids[0]!, '--from', 'drive'], at(2, 2));
    expect(locked.code).toBe(75);
    expect(locked.stderr).toMatch(/another run holds the lock \(a test holding the lock/);
    await fsp.rm(lock);
    expect(await p.held('drive')).toEqual(ids);

    const forget = await p.cli(['forget', ids[0]!, '--from', 'drive', '--json'], at(2, 3));
    expect(forget.code, forget.stderr).toBe(0);
    expect(forget.json()).toEqual({
      repository: 'destinations.drive',
      id: ids[0],
      suspect: expect.objectContaining({ id: ids[0], repository: 'destinations.drive', kind: 'authentication' }),
    });
    expect(await p.held('drive')).toEqual([ids[1]]);
    expect(existsSync(p.snapshotDir('drive', ids[0]!))).toBe(false);
    expect(await p.held('backupRoot')).toEqual(ids);
    expect((await p.cli(['status', '--json'], at(2, 4))).json().suspects).toEqual([]);
    // The next run sends backupRoot's good copy again, since retention keeps it.
    await p.run(at(3));
    expect(await p.held('drive')).toContain(ids[0]);
  });
});

describe('the tool deletes only what it created', () => {
  it('folders under snapshots/ without manifest or marker, at backupRoot and at the drive, are reported by prune and status and left alone', async () => {
    const p = await project('foreign', `retention: { last: 1 }\n${DRIVE}`);
    await p.run(at(1));
    const local = path.join(p.dir, 'backups', 'snapshots', '20261101T000000Z-default-abcd');
    const remote = path.join(p.dir, 'drive', HOST, 'snapshots', '20261101T000000Z-default-beef');
    const other = path.join(p.dir, 'backups', 'snapshots', 'holiday-2019');
    await writeTree(local, { 'photos.tar': 'the only copy' });
    await writeTree(remote, { 'notes.txt': 'not a backup' });
    await writeTree(other, { 'pic.jpg': 'jpeg' });

    const last = await p.run(at(2));
    const prune = await p.cli(['prune', '--json'], at(2, 1));
    expect(prune.code, prune.stderr).toBe(0);
    const [root, drive] = prune.json();
    expect(root).toMatchObject({ repository: 'backupRoot', foreign: [{ id: '20261101T000000Z-default-abcd', objects: 1, bytes: 13 }], orphans: 0 });
    expect(drive).toMatchObject({ repository: 'destinations.drive', foreign: [{ id: '20261101T000000Z-default-beef', objects: 1, bytes: 12 }], orphans: 0 });
    const text = await p.cli(['prune'], at(2, 2));
    expect(text.stdout).toContain('? snapshots/20261101T000000Z-default-abcd/: no manifest and no marker of this tool (1 object(s)): left alone');
    expect(logMessages(text.stderr)).toMatch(/destinations\.drive: snapshots\/20261101T000000Z-default-beef\/ has no manifest and no marker of this tool/);

    expect(await fsp.readFile(path.join(local, 'photos.tar'), 'utf8')).toBe('the only copy');
    expect(await fsp.readFile(path.join(remote, 'notes.txt'), 'utf8')).toBe('not a backup');
    expect(await fsp.readFile(path.join(other, 'pic.jpg'), 'utf8')).toBe('jpeg');
    expect(await p.held('backupRoot')).toEqual([last]);

    const status = await p.cli(['status', '--json'], at(2, 3));
    expect(status.json().foreign).toEqual([
      { repository: 'backupRoot', id: '20261101T000000Z-default-abcd' },
      { repository: 'destinations.drive', id: '20261101T000000Z-default-beef' },
    ]);
  });

  it('an upload cut short leaves the marker: prune reports it, removes it only after 24 hours, and --dry-run says so first', async () => {
    const p = await project('incomplete', `retention: { last: 1 }\ndestinations:\n  drive: { use: ./half-drive.mjs, path: ./drive }\n`);
    // A destination whose manifest uploads fail while HALF_DRIVE_FAIL is set: a real upload cut
    // short before the manifest, as a dropped connection or a crash leaves it.
    await fsp.writeFile(
      path.join(p.dir, 'half-drive.mjs'),
      `import path from 'node:path';
import { BackupError, defineDestination, LocalDestination, z } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/core/dist/index.js'))};
class HalfDrive extends LocalDestination {
  async put(key, body, info) {
    if (process.env.HALF_DRIVE_FAIL && key.endsWith('/manifest.json')) {
      body.destroy();
      throw new BackupError('E_DESTINATION', 'the drive went away', { details: { retryable: false } });
    }
    return super.put(key, body, info);
  }
}
export default defineDestination({
  name: 'half-drive',
  options: z.object({ path: z.string() }).strict(),
  traits: { medium: 'local-disk', offsite: false },
  create: (options, ctx) => new HalfDrive(path.resolve(ctx.configDir, options.path)),
});
`,
    );
    const cut = await p.cli(['run', '--json'], at(1), { HALF_DRIVE_FAIL: '1' });
    expect(cut.code).toBe(1);
    const id: string = cut.json().snapshot;
    const folder = p.snapshotDir('drive', id);
    expect((await fsp.readdir(folder)).sort()).toEqual([MARKER, 'configs.tar.zst']);
    expect(JSON.parse(await fsp.readFile(path.join(folder, MARKER), 'utf8'))).toEqual({ tool: 'sutazai-backup', snapshot: id, state: 'uploading', since: expect.stringMatching(/^2026-11-01T02:00/) });
    expect((await p.cli(['list', '--from', 'drive', '--json'], at(1, 1))).json()).toEqual([]);

    const early = await p.cli(['prune', '--from', 'drive', '--json'], at(1, 3));
    expect(early.code, early.stderr).toBe(0);
    expect(early.json()[0]).toMatchObject({ incomplete: [{ id, objects: 2, state: 'uploading', removed: false }], foreign: [], orphans: 0 });
    expect((await fsp.readdir(folder)).sort()).toEqual([MARKER, 'configs.tar.zst']);

    const dry = await p.cli(['prune', '--from', 'drive', '--dry-run', '--json'], at(2, 3));
    expect(dry.json()[0]).toMatchObject({ dryRun: true, incomplete: [{ id, removed: true }], orphans: 1 });
    expect(existsSync(folder)).toBe(true);
    const late = await p.cli(['prune', '--from', 'drive', '--json'], at(2, 3));
    expect(late.json()[0]).toMatchObject({ dryRun: false, incomplete: dry.json()[0].incomplete, orphans: 1 });
    expect(existsSync(folder)).toBe(false);
  });

  it('retention that keeps nothing is a config error naming the rc file and the key (exit 2), before anything is written', async () => {
    const p = await project('keeps-nothing', '');
    const cases: [string, string][] = [
      ['profiles:\n  daily: { sources: "*", retention: { last: 0 } }\n', 'profiles.daily.retention'],
      ['profiles:\n  daily: { sources: "*", retention: { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 } }\n', 'profiles.daily.retention'],
      ['retention: { within: 0d }\n', 'retention'],
      ['destinations:\n  offsite: { use: local, path: ./offsite, retention: { last: 0 } }\n', 'destinations.offsite.retention'],
    ];
    for (const [yaml, key] of cases) {
      await p.rc(yaml);
      for (const args of [['config', 'validate'], ['run']]) {
        const r = await p.cli(args, at(1));
        expect(r.code, `${args.join(' ')}: ${yaml}`).toBe(2);
        expect(r.stderr).toContain(`${path.join(p.dir, '.sutazai-backuprc')}: ${key}: keeps no snapshots: set at least one of last, hourly, daily, weekly, monthly, yearly above 0`);
      }
    }
    expect(existsSync(path.join(p.dir, 'backups'))).toBe(false);
  });
});

describe('prune by profile', () => {
  it('prunes a repository holding several profiles\' snapshots each by its own policy, keeps those of a profile no longer configured, and --dry-run lists exactly what prune then removes', async () => {
    const wide = 'profiles:\n  daily: { sources: "*", retention: { last: 10 } }\n  weekly: { sources: "*", retention: { last: 10 } }\n  retired: { sources: "*", retention: { last: 10 } }\n';
    const p = await project('profiles', wide);
    const made: Record<string, string[]> = { daily: [], weekly: [], retired: [] };
    let day = 1;
    for (const profile of ['retired', 'retired', 'weekly', 'daily', 'weekly', 'daily', 'weekly', 'daily']) made[profile]!.push(await p.run(at(day++), ['--profile', profile]));
    await p.rc('profiles:\n  daily: { sources: "*", retention: { last: 2 } }\n  weekly: { sources: "*", retention: { last: 1 } }\n');

    const dry = await p.cli(['prune', '--dry-run', '--json'], at(day));
    expect(dry.code, dry.stderr).toBe(0);
    const plan = dry.json()[0];
    expect(removedIds(plan).sort()).toEqual([made.daily![0], made.weekly![0], made.weekly![1]].sort());
    expect(plan.kept.filter((d: any) => d.id.includes('-retired-')).map((d: any) => d.reasons)).toEqual([
      ['profile retired is not configured'],
      ['profile retired is not configured'],
    ]);
    expect((await p.held('backupRoot')).length).toBe(8);

    const real = await p.cli(['prune', '--json'], at(day));
    expect(real.code, real.stderr).toBe(0);
    expect(removedIds(real.json()[0])).toEqual(removedIds(plan));
    expect(await p.held('backupRoot')).toEqual([...made.retired!, made.weekly![2], ...made.daily!.slice(1)].sort());
  });
});

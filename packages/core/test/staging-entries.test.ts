/**
 * The entries a process makes in staging/ and what cleaning up does with odd things found
 * there: markers without their entry, markers the tool did not write (another user's, another
 * program's, misnamed), links, and a staging/ that is missing or not a folder. Owners are real
 * processes: this one (alive) and children that exited.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StagingArea } from '../src/staging.js';

let root: string;
let area: StagingArea;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-staging-entries-'));
  area = new StagingArea(root);
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const deadPid = () => Number(spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout);
const markerOf = (kind: string, pid: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ tool: 'sutazai-backup', kind, pid, host: os.hostname(), createdAt: '2026-01-01T00:00:00.000Z', ...extra });

/** An entry with a marker written by hand (as a process that then died would have left it). */
async function left(rel: string, marker: string, entry: 'folder' | 'none' = 'folder'): Promise<string> {
  const abs = path.join(area.dir, rel);
  await fsp.mkdir(path.dirname(abs), { recursive: true, mode: 0o700 });
  await fsp.writeFile(path.join(path.dirname(abs), `.${path.basename(abs)}.owner`), marker, { mode: 0o600 });
  if (entry === 'folder') await fsp.mkdir(abs);
  return abs;
}

describe('create and scratch', () => {
  it('make a private folder where asked, with a one-line marker naming this process beside it', async () => {
    const run = await area.create('snapshots/20260101T000000Z-daily-0a0b', 'run');
    const work = await area.create('work-20260101T000000Z-daily-0a0b', 'run');
    expect(run).toBe(path.join(root, 'staging', 'snapshots', '20260101T000000Z-daily-0a0b'));
    expect(work).toBe(path.join(root, 'staging', 'work-20260101T000000Z-daily-0a0b'));
    for (const entry of [run, work]) {
      expect((await fsp.stat(entry)).mode & 0o777).toBe(0o700);
      const marker = await fsp.readFile(path.join(path.dirname(entry), `.${path.basename(entry)}.owner`), 'utf8');
      expect(marker.endsWith('}\n')).toBe(true);
      expect(JSON.parse(marker)).toMatchObject({ tool: 'sutazai-backup', kind: 'run', pid: process.pid, host: os.hostname() });
    }
  });

  it('a scratch folder is named after its label, made safe and short', async () => {
    const scratch = await area.scratch('restore test/../db "main"');
    expect(path.basename(scratch)).toMatch(/^scratch-restore_test_.._db__main_-[0-9a-f]{8}$/);
    expect(path.basename(await area.scratch('x'.repeat(100)))).toMatch(new RegExp(`^scratch-${'x'.repeat(40)}-[0-9a-f]{8}$`));
  });

  it('leave no file descriptor open', async () => {
    await area.scratch('warm-up');
    const open = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 20; i++) await area.discard(await area.scratch(`s${i}`));
    expect(readdirSync('/proc/self/fd').length).toBe(open);
  });
});

describe('discard and forget', () => {
  it('discard removes the folder and its marker, and is done when either is already gone', async () => {
    const scratch = await area.scratch('verify');
    await fsp.writeFile(path.join(scratch, 'db.out'), 'x');
    await area.discard(scratch);
    expect(await fsp.readdir(area.dir)).toEqual([]);
    await area.discard(scratch);
    await area.forget(scratch);
  });

  it('never removes a link found where its folder was, nor what it points to', async () => {
    const scratch = await area.scratch('verify');
    const elsewhere = path.join(root, 'elsewhere');
    await fsp.mkdir(elsewhere);
    await fsp.writeFile(path.join(elsewhere, 'keep'), 'keep');
    await fsp.rmdir(scratch);
    await fsp.symlink(elsewhere, scratch);
    await area.discard(scratch);
    expect(await fsp.readlink(scratch)).toBe(elsewhere);
    expect(await fsp.readdir(elsewhere)).toEqual(['keep']);
  });
});

describe('clean', () => {
  it('has nothing to do when staging/ is missing or is not a folder', async () => {
    expect(await area.clean({ locked: true })).toEqual({ removed: [], foreign: [] });
    await fsp.writeFile(area.dir, 'a file');
    expect(await area.clean({ locked: true })).toEqual({ removed: [], foreign: [] });
  });

  it("drops a marker whose entry is gone once its process is, and leaves a live one's and one it did not write", async () => {
    await left('gone-run', markerOf('scratch', deadPid()), 'none');
    await left('live-run', markerOf('scratch', process.pid), 'none');
    await left('garbage', 'not a marker', 'none');
    const result = await area.clean({ locked: false });
    expect(result).toEqual({ removed: [], foreign: [] });
    expect((await fsp.readdir(area.dir)).sort()).toEqual(['.garbage.owner', '.live-run.owner']);
  });

  it('a marker the tool did not write does not make an entry its own', async () => {
    const dead = deadPid();
    const entries = [
      await left('other-tool', markerOf('run', dead, { tool: 'other' })),
      await left('other-kind', markerOf('cache', dead)),
      await left('no-owner', JSON.stringify({ tool: 'sutazai-backup', kind: 'run' })),
      await left('theirs', markerOf('run', dead)),
    ];
    await fsp.chown(path.join(area.dir, '.theirs.owner'), 1234, 1234);
    const ours = await left('ours', markerOf('run', dead));
    const result = await area.clean({ locked: false });
    expect(result.removed).toEqual([ours]);
    expect(result.foreign.sort()).toEqual(entries.sort());
  });

  it('names that only look like markers are entries: reported, not skipped', async () => {
    await fsp.mkdir(area.dir, { mode: 0o700 });
    for (const name of ['report.final.owner', '.notes.owner.bak']) await fsp.writeFile(path.join(area.dir, name), 'x');
    expect((await area.clean({ locked: true })).foreign.sort()).toEqual([path.join(area.dir, '.notes.owner.bak'), path.join(area.dir, 'report.final.owner')]);
  });

  it('cleans staging/snapshots when it is the only folder there', async () => {
    const stale = await left('snapshots/20260101T000000Z-daily-0a0b', markerOf('run', deadPid()));
    expect(await area.clean({ locked: false })).toEqual({ removed: [stale], foreign: [] });
    expect(await fsp.readdir(path.join(area.dir, 'snapshots'))).toEqual([]);
  });

  it('a link at staging/snapshots is reported, not followed', async () => {
    const elsewhere = path.join(root, 'elsewhere');
    await fsp.mkdir(path.join(elsewhere, '20260101T000000Z-daily-0a0b'), { recursive: true });
    await fsp.mkdir(area.dir, { mode: 0o700 });
    await fsp.symlink(elsewhere, path.join(area.dir, 'snapshots'));
    expect(await area.clean({ locked: true })).toEqual({ removed: [], foreign: [path.join(area.dir, 'snapshots')] });
    expect(await fsp.readdir(elsewhere)).toEqual(['20260101T000000Z-daily-0a0b']);
  });
});

/**
 * staging/ cleanup removes only the tool's own entries whose process is gone: not a scratch
 * folder a verify or restore is using right now, not what the tool did not make. The entries
 * are made by real processes (this one, and children that exit).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StagingArea } from '../src/staging.js';

const STAGING_MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/staging.js');

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-staging-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** Makes staging entries in another process, which then exits; resolves with their paths. */
function madeByAGoneProcess(entries: [string, 'run' | 'scratch'][]): string[] {
  const script = `
    import { StagingArea } from ${JSON.stringify(STAGING_MODULE)};
    const area = new StagingArea(process.argv[1]);
    const made = [];
    for (const [rel, kind] of JSON.parse(process.argv[2])) made.push(kind === 'scratch' ? await area.scratch(rel) : await area.create(rel, kind));
    process.stdout.write(JSON.stringify(made));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, root, JSON.stringify(entries)], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as string[];
}

describe('StagingArea.clean', () => {
  it("removes what gone processes left, keeps a live process's scratch folder and what the tool did not make", async () => {
    const area = new StagingArea(root);
    const [deadScratch, deadRun, deadWork] = madeByAGoneProcess([
      ['verify', 'scratch'],
      ['snapshots/20260101T000000Z-daily-0a0b', 'run'],
      ['work-20260101T000000Z-daily-0a0b', 'run'],
    ]);
    await fsp.writeFile(path.join(deadScratch!, 'db.out'), 'x');
    const live = await area.scratch('restore-test');
    await fsp.writeFile(path.join(live, 'db.out'), 'in use');
    await fsp.mkdir(path.join(area.dir, 'mine'));
    await fsp.writeFile(path.join(area.dir, 'mine', 'a.txt'), 'mine');
    await fsp.mkdir(path.join(area.dir, 'snapshots', '20250101T000000Z-daily-abcd'));
    // A marker forged by hand next to a file: a marker alone does not make a file the tool's.
    await fsp.writeFile(path.join(area.dir, 'notes.txt'), 'mine');
    const forged = { tool: 'sutazai-backup', kind: 'scratch', pid: 999_999_999, host: os.hostname(), createdAt: '2026-01-01T00:00:00Z' };
    await fsp.writeFile(path.join(area.dir, '.notes.txt.owner'), JSON.stringify(forged));

    const result = await area.clean({ locked: false });
    expect(result.removed.sort()).toEqual([deadRun, deadScratch, deadWork].sort());
    expect(result.foreign.sort()).toEqual([path.join(area.dir, 'mine'), path.join(area.dir, 'notes.txt'), path.join(area.dir, 'snapshots', '20250101T000000Z-daily-abcd')].sort());
    expect(await fsp.readFile(path.join(live, 'db.out'), 'utf8')).toBe('in use');
    expect(await fsp.readFile(path.join(area.dir, 'mine', 'a.txt'), 'utf8')).toBe('mine');
    // The markers went with their entries.
    expect((await fsp.readdir(area.dir)).filter((n) => n.endsWith('.owner')).sort()).toEqual(['.notes.txt.owner', `.${path.basename(live)}.owner`].sort());
    expect(await fsp.readFile(path.join(area.dir, 'notes.txt'), 'utf8')).toBe('mine');
    expect(await fsp.readdir(path.join(area.dir, 'snapshots'))).toEqual(['20250101T000000Z-daily-abcd']);
  });

  it("under the run lock, a run's entries are removed even if their process lives; scratch folders in use are not", async () => {
    const area = new StagingArea(root);
    const run = await area.create('work-20260101T000000Z-daily-0a0b', 'run');
    const live = await area.scratch('verify');
    expect((await area.clean({ locked: false })).removed).toEqual([]);
    expect((await area.clean({ locked: true })).removed).toEqual([run]);
    expect(existsSync(live)).toBe(true);
    await area.discard(live);
    expect(await fsp.readdir(area.dir)).toEqual([]);
  });

  it('refuses a staging folder that is a link', async () => {
    const elsewhere = path.join(root, 'elsewhere');
    await fsp.mkdir(path.join(elsewhere, 'work-20260101T000000Z-daily-0a0b'), { recursive: true });
    await fsp.symlink(elsewhere, path.join(root, 'staging'));
    await expect(new StagingArea(root).clean({ locked: true })).rejects.toThrow(/staging is a symbolic link/);
    await expect(new StagingArea(root).scratch('x')).rejects.toThrow(/staging is a symbolic link/);
    expect(await fsp.readdir(elsewhere)).toEqual(['work-20260101T000000Z-daily-0a0b']);
  });
});

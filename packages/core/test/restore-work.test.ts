/**
 * A restore's work folder (`DIR/.sutazai-restore-XXXXXX`): a later restore removes the ones a
 * killed restore left, and nothing else: not one a live restore is using, not another host's,
 * not one the tool did not make, never through a link. Work folders of gone restores are made
 * by real processes that exit.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeRestoreWork, removeStaleRestoreWork } from '../src/restore-work.js';
import { capturingLogger } from './helpers/repo-fixtures.js';

const WORK_MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/restore-work.js');

let target: string;
beforeEach(async () => {
  target = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-restore-work-'));
});
afterEach(async () => {
  await fsp.rm(target, { recursive: true, force: true });
});

/** A work folder made by another process, which then exits (as a killed restore would). */
function madeByAGoneRestore(): string {
  const script = `import { makeRestoreWork } from ${JSON.stringify(WORK_MODULE)}; process.stdout.write(await makeRestoreWork(process.argv[1]));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, target], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** A folder named like a work folder, made by hand, `ageMs` old. */
async function unmarked(name: string, files: string[], ageMs: number): Promise<string> {
  const dir = path.join(target, name);
  await fsp.mkdir(dir);
  for (const f of files) await fsp.writeFile(path.join(dir, f), 'x');
  const then = new Date(Date.now() - ageMs);
  await fsp.utimes(dir, then, then);
  return dir;
}

describe('makeRestoreWork', () => {
  it('makes a private folder in the target, marked with the process that made it', async () => {
    const work = await makeRestoreWork(target);
    expect(path.dirname(work)).toBe(target);
    expect(path.basename(work)).toMatch(/^\.sutazai-restore-[A-Za-z0-9]{6}$/);
    expect((await fsp.stat(work)).mode & 0o777).toBe(0o700);
    expect(await fsp.readdir(work)).toEqual(['.owner']);
    const marker = JSON.parse(await fsp.readFile(path.join(work, '.owner'), 'utf8')) as Record<string, unknown>;
    expect(marker).toMatchObject({ tool: 'sutazai-backup', pid: process.pid, host: os.hostname(), processStart: expect.stringMatching(/^\d+$/) });
    expect(Date.now() - Date.parse(marker.createdAt as string)).toBeLessThan(60_000);
    expect(await fsp.readFile(path.join(work, '.owner'), 'utf8')).toMatch(/^\{.*\}\n$/);
  });
});

describe('removeStaleRestoreWork', () => {
  it("removes what a killed restore left, and keeps a live restore's folder and another host's", async () => {
    const gone = madeByAGoneRestore();
    await fsp.writeFile(path.join(gone, 'half-restored.db'), 'x');
    const live = await makeRestoreWork(target);
    const elsewhere = await unmarked('.sutazai-restore-remote', [], 0);
    await fsp.writeFile(path.join(elsewhere, '.owner'), JSON.stringify({ tool: 'sutazai-backup', pid: 1, host: 'backup-host-2', createdAt: '2026-01-01T00:00:00Z' }));
    const { logger, lines } = capturingLogger();

    expect(await removeStaleRestoreWork(target, logger)).toEqual([gone]);
    expect(lines).toEqual([{ level: 'info', msg: `removed ${gone}, left by an interrupted restore` }]);
    expect((await fsp.readdir(target)).sort()).toEqual([path.basename(live), path.basename(elsewhere)].sort());
  });

  it('an unmarked folder is one being made, until a minute has passed; then it goes only if it holds nothing but a marker cut short', async () => {
    const young = await unmarked('.sutazai-restore-young1', [], 10_000);
    const cutShort = await unmarked('.sutazai-restore-short1', ['.owner.partial'], 120_000);
    const empty = await unmarked('.sutazai-restore-empty1', [], 120_000);
    const notOurs = await unmarked('.sutazai-restore-other1', ['data.bin'], 120_000);
    // A marker some other program wrote does not count as ours.
    const otherTool = await unmarked('.sutazai-restore-tool01', ['.owner', 'data.bin'], 120_000);
    await fsp.writeFile(path.join(otherTool, '.owner'), JSON.stringify({ tool: 'other', pid: 999_999_999, host: os.hostname() }));
    const { logger, lines } = capturingLogger();

    expect((await removeStaleRestoreWork(target, logger)).sort()).toEqual([cutShort, empty].sort());
    expect(lines.filter((l) => l.level === 'warn')).toEqual(
      [otherTool, notOurs].map((w) => ({ level: 'warn', msg: `${w} was not made by this version of the tool (no marker): left alone; remove it by hand if nothing uses it` })).sort((a, b) => (a.msg < b.msg ? -1 : 1)),
    );
    expect((await fsp.readdir(target)).sort()).toEqual([young, notOurs, otherTool].map((d) => path.basename(d)).sort());
  });

  it('never follows a link, never touches a folder of another user or one not named like a work folder', async () => {
    const gone = madeByAGoneRestore();
    const precious = path.join(target, 'precious');
    await fsp.rename(gone, precious);
    await fsp.symlink(precious, path.join(target, '.sutazai-restore-link01'));
    await fsp.writeFile(path.join(target, '.sutazai-restore-file01'), 'a file');
    const another = madeByAGoneRestore();
    await fsp.chown(another, 1234, 1234);
    const oddName = madeByAGoneRestore();
    await fsp.rename(oddName, path.join(target, '.sutazai-restore-toolong'));

    expect(await removeStaleRestoreWork(target, undefined)).toEqual([]);
    expect((await fsp.readdir(target)).sort()).toEqual(['.sutazai-restore-file01', '.sutazai-restore-link01', '.sutazai-restore-toolong', path.basename(another), 'precious'].sort());
    expect(await fsp.readdir(precious)).toEqual(['.owner']);
  });

  it('only a name that is exactly a work folder\'s counts: one that merely ends like it is left alone', async () => {
    const gone = madeByAGoneRestore();
    const lookalike = path.join(target, `photos${path.basename(gone)}`);
    await fsp.rename(gone, lookalike);
    expect(await removeStaleRestoreWork(target, undefined)).toEqual([]);
    expect(await fsp.readdir(lookalike)).toEqual(['.owner']);
  });

  it('cleans up and leaves alone the same without a logger to tell', async () => {
    const gone = madeByAGoneRestore();
    const notOurs = await unmarked('.sutazai-restore-other1', ['data.bin'], 120_000);
    expect(await removeStaleRestoreWork(target, undefined)).toEqual([gone]);
    expect(await fsp.readdir(target)).toEqual([path.basename(notOurs)]);
  });

  it('a target that does not exist has nothing to clean', async () => {
    expect(await removeStaleRestoreWork(path.join(target, 'missing'), undefined)).toEqual([]);
  });
});

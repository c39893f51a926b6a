/**
 * The replicate stage with the `local` destination: artifacts first, manifest last, a drive that
 * is not mounted refused per destination while the local snapshot stays committed, and a copy
 * that restores on its own once backupRoot is gone.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTree, writeTree } from '@sutazai/backup-testkit';
import { runCli, tempDir, writeRc } from '../helpers/cli.js';

let work: string;
let drive: string;

beforeAll(async () => {
  work = await tempDir();
  drive = path.join(work, 'drive');
  await fsp.mkdir(drive);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', drive]);
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n', sub: { 'b.txt': 'beta\n' } });
});

afterAll(async () => {
  execFileSync('umount', [drive]);
  await fsp.rm(work, { recursive: true, force: true });
});

const sources = `backupRoot: ./repo\nhost: box-1\nretention: { last: 10 }\nsources:\n  configs: { use: files, paths: [./data] }\n`;

describe('replication to local destinations', () => {
  it('copies to a mounted drive and refuses an unplugged one, reported per destination', async () => {
    await writeRc(
      work,
      `${sources}destinations:\n  drive: { use: local, path: ./drive/sutazai, requireMount: true }\n  unplugged: { use: local, path: ./unplugged/sutazai, requireMount: true }\n`,
    );
    const r = await runCli(['run', '--json'], { cwd: work });
    expect(r.code).toBe(1);
    const report = r.json();
    expect(report.snapshot).toMatch(/-default-/);
    expect(report.stages.commit.status).toBe('ok');
    const byName = Object.fromEntries(report.destinations.map((d: { name: string }) => [d.name, d]));
    expect(byName.drive).toMatchObject({ status: 'ok', sent: 2 });
    expect(byName.unplugged.status).toBe('failed');
    expect(byName.unplugged.error).toMatch(/not on a mounted drive \(requireMount: true\)/);
    expect(report.errors).toEqual([expect.objectContaining({ stage: 'replicate', code: 'E_DESTINATION' })]);
    await expect(fsp.access(path.join(work, 'unplugged'))).rejects.toThrow();
    // The default prefix is the host.
    const files = await fsp.readdir(path.join(drive, 'sutazai', 'box-1', 'snapshots', report.snapshot));
    expect(files.sort()).toEqual(['configs.tar.zst', 'manifest.json']);
  });

  it('the next run sends only what is missing', async () => {
    await writeRc(work, `${sources}destinations:\n  drive: { use: local, path: ./drive/sutazai, requireMount: true }\n`);
    const r = await runCli(['run', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const drive = r.json().destinations[0];
    // The new snapshot's two objects; the first snapshot is already there.
    expect(drive).toMatchObject({ name: 'drive', status: 'ok', sent: 2 });
    const list = await runCli(['list', '--from', 'drive', '--json'], { cwd: work });
    expect(list.json()).toHaveLength(2);
  });

  it('restores from the drive alone once backupRoot is gone', async () => {
    await fsp.rm(path.join(work, 'repo'), { recursive: true });
    const v = await runCli(['verify', '--all', '--from', 'drive'], { cwd: work });
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const out = path.join(work, 'restored');
    const r = await runCli(['restore', 'latest', '--from', 'drive', '--to', out], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(await describeTree(path.join(out, 'configs', work.slice(1), 'data'))).toEqual(await describeTree(path.join(work, 'data')));
  });
});

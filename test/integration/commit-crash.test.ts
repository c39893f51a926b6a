/**
 * SIGKILL at the two real commit points of a run, through the test-only
 * SUTAZAI_BACKUP_TEST_CRASH_AT (packages/core/src/crash-point.ts):
 *   after-manifest: the manifest is written in staging, the folder not yet renamed into snapshots/
 *   after-rename:   the snapshot is committed, nothing replicated or pruned yet
 * Either way the earlier snapshots stand and verify, no half snapshot is listed (locally or at
 * the destination), and the next run succeeds, takes over the dead lock and cleans up.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { runCli, tempDir, writeRc } from '../helpers/cli.js';

let work: string;

beforeAll(async () => {
  work = await tempDir('sutazai-commit-crash-');
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

async function project(name: string): Promise<string> {
  const dir = path.join(work, name);
  await writeTree(path.join(dir, 'data'), { 'app.yaml': 'a: 1\n', models: { 'weights.bin': 'w'.repeat(100_000) } });
  await writeRc(dir, `backupRoot: ./repo
retention: { last: 10 }
sources:
  configs: { use: files, paths: [./data] }
destinations:
  offsite: { use: local, path: ./offsite }
`);
  return dir;
}

async function listIds(dir: string, from?: string): Promise<string[]> {
  const r = await runCli(['list', '--json', ...(from ? ['--from', from] : [])], { cwd: dir });
  expect(r.code, r.stderr).toBe(0);
  return r.json().map((s: { id: string }) => s.id);
}

async function expectVerifies(dir: string, ids: string[], from?: string): Promise<void> {
  const r = await runCli(['verify', '--all', '--json', ...(from ? ['--from', from] : [])], { cwd: dir });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.json().snapshots.map((s: { id: string }) => s.id)).toEqual(ids);
}

const readdir = (p: string) => fsp.readdir(p).catch(() => [] as string[]);
/** Entries of a staging folder without the tool's ownership markers (`.<name>.owner`). */
const staged = async (p: string) => (await readdir(p)).filter((n) => !/^\..*\.owner$/.test(n));

describe('SIGKILL at a commit point', () => {
  it('after the manifest is written in staging: nothing is committed, and the next run cleans staging', async () => {
    const dir = await project('after-manifest');
    const first = await runCli(['run'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    const good = await listIds(dir);
    expect(good).toHaveLength(1);
    await fsp.writeFile(path.join(dir, 'data', 'app.yaml'), 'a: 2\n');

    const crashed = await runCli(['run'], { cwd: dir, env: { SUTAZAI_BACKUP_TEST_CRASH_AT: 'after-manifest' } });
    expect(crashed.signal).toBe('SIGKILL');
    // It died where it should: a whole staged snapshot with its manifest, never renamed.
    const entries = await staged(path.join(dir, 'repo', 'staging', 'snapshots'));
    expect(entries).toHaveLength(1);
    expect((await readdir(path.join(dir, 'repo', 'staging', 'snapshots', entries[0]!))).sort()).toEqual(['configs.tar.zst', 'manifest.json']);
    expect(existsSync(path.join(dir, 'repo', 'state', 'lock'))).toBe(true);

    expect(await readdir(path.join(dir, 'repo', 'snapshots'))).toEqual(good);
    expect(await listIds(dir)).toEqual(good);
    await expectVerifies(dir, good);
    expect(await listIds(dir, 'offsite')).toEqual(good);

    const next = await runCli(['run', '--json'], { cwd: dir });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).not.toMatch(/another run holds the lock/);
    const id = next.json().snapshot as string;
    expect(await listIds(dir)).toEqual([...good, id]);
    expect(await listIds(dir, 'offsite')).toEqual([...good, id]);
    await expectVerifies(dir, [...good, id]);
    await expectVerifies(dir, [...good, id], 'offsite');
    // The crashed run's staged snapshot is gone, and so is its lock.
    expect(await readdir(path.join(dir, 'repo', 'staging', 'snapshots'))).toEqual([]);
    expect(await readdir(path.join(dir, 'repo', 'staging'))).toEqual(expect.not.arrayContaining([expect.stringMatching(/^work-/)]));
    expect(existsSync(path.join(dir, 'repo', 'state', 'lock'))).toBe(false);
  });

  it('after the rename: the snapshot is whole and verifies, and the next run replicates it', async () => {
    const dir = await project('after-rename');
    const first = await runCli(['run'], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    const good = await listIds(dir);
    await fsp.writeFile(path.join(dir, 'data', 'app.yaml'), 'a: 2\n');

    const crashed = await runCli(['run'], { cwd: dir, env: { SUTAZAI_BACKUP_TEST_CRASH_AT: 'after-rename' } });
    expect(crashed.signal).toBe('SIGKILL');
    const local = await listIds(dir);
    expect(local).toHaveLength(2);
    expect(local.slice(0, 1)).toEqual(good);
    const crashedId = local[1]!;
    // It died where it should: renamed, its work folder not yet removed, nothing sent offsite.
    expect(await staged(path.join(dir, 'repo', 'staging', 'snapshots'))).toEqual([]);
    expect(await readdir(path.join(dir, 'repo', 'staging'))).toContain(`work-${crashedId}`);
    expect(existsSync(path.join(dir, 'repo', 'state', 'lock'))).toBe(true);

    // The committed snapshot is whole; the destination has no part of it.
    await expectVerifies(dir, local);
    expect(await listIds(dir, 'offsite')).toEqual(good);
    const [host] = await readdir(path.join(dir, 'offsite'));
    expect(await readdir(path.join(dir, 'offsite', host!, 'snapshots'))).toEqual(good);

    const next = await runCli(['run', '--json'], { cwd: dir });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).not.toMatch(/another run holds the lock/);
    const id = next.json().snapshot as string;
    const all = [...local, id];
    expect(await listIds(dir)).toEqual(all);
    // The crashed run's snapshot reaches the destination with the new one.
    expect(await listIds(dir, 'offsite')).toEqual(all);
    await expectVerifies(dir, all, 'offsite');
    expect(await readdir(path.join(dir, 'repo', 'staging'))).toEqual(expect.not.arrayContaining([expect.stringMatching(/^work-/)]));
    // Nothing of the crashed run is left in staging, its ownership markers included.
    expect(await readdir(path.join(dir, 'repo', 'staging', 'snapshots'))).toEqual([]);
    expect(existsSync(path.join(dir, 'repo', 'state', 'lock'))).toBe(false);
  });
});

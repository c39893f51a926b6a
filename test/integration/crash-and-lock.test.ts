/**
 * A run killed with SIGKILL during collect, archive or commit leaves no half snapshot in `list`;
 * earlier snapshots still verify; the next run succeeds (its stale lock is detected). Two runs at
 * once: the second exits 75 and the repository still verifies. Files 0600 and folders 0700
 * whatever the umask.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { CLI_BIN, REPO_ROOT, runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';

let work: string;
const pausePlugin = path.join(REPO_ROOT, 'test/fixtures/pause-plugin.mjs');

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function rc(extra = ''): string {
  return `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data/config] }
  blobs: { use: files, paths: [./data/blobs] }
${extra}`;
}

async function listIds(): Promise<string[]> {
  const r = await runCli(['list', '--json'], { cwd: work });
  expect(r.code, r.stderr).toBe(0);
  return r.json().map((s: { id: string }) => s.id);
}

async function expectRepositoryVerifies(ids: string[]): Promise<void> {
  const r = await runCli(['verify', '--all', '--json'], { cwd: work });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.json().snapshots.map((s: { id: string }) => s.id)).toEqual(ids);
}

beforeAll(async () => {
  work = await tempDir();
  await writeTree(path.join(work, 'data'), { config: { 'app.yaml': 'a: 1\n', 'db.env': 'X=1\n' }, blobs: {} });
  const blob = await fsp.open(path.join(work, 'data', 'blobs', 'model.bin'), 'w');
  for (let i = 0; i < 40; i++) await blob.write(randomBytes(1024 * 1024));
  await blob.close();
  await writeRc(work, rc());
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('crashes', () => {
  let good: string[] = [];

  it('a first run succeeds', async () => {
    const r = await runCli(['run'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    good = await listIds();
    expect(good).toHaveLength(1);
  });

  for (const stage of ['collect', 'archive', 'commit'] as const) {
    it(`SIGKILL during ${stage} leaves no half snapshot, and the next run succeeds`, async () => {
      const marker = path.join(work, `paused-${stage}`);
      const rcFile = await writeRc(work, rc(`plugins:\n  - { use: ${pausePlugin}, stage: ${stage}, marker: ${marker} }\n`), 'paused.yaml');
      const { child, result } = startCli(['run', '--config', rcFile], { cwd: work });
      await waitFor(() => existsSync(marker));
      child.kill('SIGKILL');
      const r = await result;
      expect(r.signal).toBe('SIGKILL');
      // The dead run's lock is still there, naming a dead pid.
      expect(existsSync(path.join(work, 'repo', 'state', 'lock'))).toBe(true);

      expect(await listIds()).toEqual(good);
      await expectRepositoryVerifies(good);

      const next = await runCli(['run', '--json'], { cwd: work });
      expect(next.code, next.stderr).toBe(0);
      expect(next.stderr).not.toMatch(/another run holds the lock/);
      good = await listIds();
      expect(good.at(-1)).toBe(next.json().snapshot);
      await expectRepositoryVerifies(good);
      // What the killed run staged is gone.
      expect(await fsp.readdir(path.join(work, 'repo', 'staging')).catch(() => [])).toEqual(expect.not.arrayContaining([expect.stringMatching(/^work-/)]));
    });
  }

  it('SIGKILL while an artifact is being written leaves no half snapshot', async () => {
    const { child, result } = startCli(['run', '--sequential'], { cwd: work });
    const stagingSnapshots = path.join(work, 'repo', 'staging', 'snapshots');
    // Wait until the big artifact is partly written.
    await waitFor(async () => {
      for (const id of await fsp.readdir(stagingSnapshots).catch(() => [] as string[])) {
        for (const f of await fsp.readdir(path.join(stagingSnapshots, id)).catch(() => [] as string[])) {
          if (f.startsWith('blobs') && (await fsp.stat(path.join(stagingSnapshots, id, f))).size > 1024 * 1024) return true;
        }
      }
      return false;
    });
    child.kill('SIGKILL');
    await result;
    expect(await listIds()).toEqual(good);
    await expectRepositoryVerifies(good);
    const next = await runCli(['run'], { cwd: work });
    expect(next.code, next.stderr).toBe(0);
    good = await listIds();
    await expectRepositoryVerifies(good);
  });

  it('two runs at once: the second exits 75 and the repository still verifies', async () => {
    const marker = path.join(work, 'paused-lock');
    const rcFile = await writeRc(work, rc(`plugins:\n  - { use: ${pausePlugin}, stage: archive, marker: ${marker} }\n`), 'holder.yaml');
    const { child, result } = startCli(['run', '--config', rcFile], { cwd: work });
    await waitFor(() => existsSync(marker));
    const second = await runCli(['run', '--json'], { cwd: work });
    expect(second.code).toBe(75);
    expect(second.stderr).toMatch(/another run holds the lock \(run --profile default, pid \d+/);
    expect(second.json().error.code).toBe('E_LOCKED');
    // prune also takes the lock.
    expect((await runCli(['prune'], { cwd: work })).code).toBe(75);
    // SIGTERM stops the first run within its grace period even though a plugin hangs in a hook.
    const t0 = Date.now();
    child.kill('SIGTERM');
    const first = await result;
    expect(first.code).toBe(143);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(existsSync(path.join(work, 'repo', 'state', 'lock'))).toBe(false);
    expect(await listIds()).toEqual(good);
    await expectRepositoryVerifies(good);
  });
});

describe('the repository layout', () => {
  it('is DESIGN\'s, with files 0600 and folders 0700 whatever the umask', async () => {
    const dir = await tempDir();
    try {
      await writeTree(path.join(dir, 'data'), { 'a.txt': 'a\n', sub: { 'b.txt': 'b\n' } });
      await writeRc(dir, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\n`);
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn('sh', ['-c', `umask 000 && exec "${process.execPath}" "${CLI_BIN}" run`], { cwd: dir, stdio: 'ignore' });
        child.on('close', resolve);
      });
      expect(code).toBe(0);
      const list = await runCli(['list', '--json'], { cwd: dir });
      const [snapshot] = list.json();
      const repo = path.join(dir, 'repo');
      expect((await fsp.readdir(path.join(repo, 'snapshots', snapshot.id))).sort()).toEqual(['configs.tar.zst', 'manifest.json']);
      const manifest = JSON.parse(await fsp.readFile(path.join(repo, 'snapshots', snapshot.id, 'manifest.json'), 'utf8'));
      expect(Object.keys(manifest)).toEqual(expect.arrayContaining(['formatVersion', 'id', 'profile', 'host', 'startedAt', 'finishedAt', 'tool', 'artifacts']));
      expect(manifest.artifacts[0]).toMatchObject({ source: 'configs', plugin: 'files', file: 'configs.tar.zst', compression: 'zstd', encryption: null });
      expect(Object.keys(manifest.artifacts[0])).toEqual(expect.arrayContaining(['bytes', 'sha256', 'meta']));

      const modes: string[] = [];
      const walk = async (p: string) => {
        const st = await fsp.lstat(p);
        modes.push(`${path.relative(dir, p) || '.'} ${(st.mode & 0o777).toString(8)} ${st.isDirectory() ? 'dir' : 'file'}`);
        if (st.isDirectory()) for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
      };
      await walk(repo);
      expect(modes.length).toBeGreaterThan(5);
      for (const m of modes) expect(m).toMatch(/ (700 dir|600 file)$/);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

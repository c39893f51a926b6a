/**
 * A sparse file restores sparse (it takes on disk what it took before, not its length), and a
 * run stopped by SIGTERM or SIGINT cleans up and exits as the shell reports a process stopped
 * by that signal (143, 130), with nothing half-written left behind.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { REPO_ROOT, runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';

// Small enough for a busy CI machine; the holes are what counts, not the length.
const SIZE = 256 * 1024 * 1024;
const pausePlugin = path.join(REPO_ROOT, 'test/fixtures/pause-plugin.mjs');

let work: string;
beforeAll(async () => {
  work = await tempDir('sutazai-sparse-');
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What `du` reports: the space a file takes on disk, in KiB. */
function diskKiB(file: string): number {
  return Number(execFileSync('du', ['-k', file], { encoding: 'utf8' }).split('\t')[0]);
}

describe('a sparse file', () => {
  it('restores sparse, with the same bytes', async () => {
    const data = path.join(work, 'data');
    await fsp.mkdir(data);
    const image = path.join(data, 'disk.img');
    const handle = await fsp.open(image, 'w');
    await handle.write('boot sector\n', 0);
    await handle.write(Buffer.alloc(10_000, 7), 0, 10_000, SIZE / 2 + 123);
    await handle.write('end\n', SIZE - 4);
    await handle.close();
    // The file system here keeps holes (else this test would prove nothing).
    expect(diskKiB(image)).toBeLessThan(1024);

    await writeRc(work, `backupRoot: ./repo\nsources:\n  disks: { use: files, paths: [./data] }\n`);
    const run = await runCli(['run'], { cwd: work });
    expect(run.code, run.stderr).toBe(0);
    const target = path.join(work, 'restored');
    const restore = await runCli(['restore', 'latest', '--to', target], { cwd: work });
    expect(restore.code, restore.stderr).toBe(0);

    const restored = path.join(target, 'disks', image);
    expect((await fsp.stat(restored)).size).toBe(SIZE);
    expect(diskKiB(restored)).toBeLessThan(1024);
    expect(await sha256(restored)).toBe(await sha256(image));
  });
});

describe('a run stopped by a signal', () => {
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    it(`${signal}: cleans up, records the run, and exits ${code}`, async () => {
      const project = path.join(work, signal);
      await writeTree(path.join(project, 'data'), { 'a.txt': 'alpha\n' });
      await writeRc(project, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\n`);
      const first = await runCli(['run'], { cwd: project });
      expect(first.code, first.stderr).toBe(0);
      const snapshots = await fsp.readdir(path.join(project, 'repo', 'snapshots'));

      const marker = path.join(project, 'paused');
      const rc = await writeRc(project, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\nplugins:\n  - { use: ${pausePlugin}, stage: archive, marker: ${marker}, untilAbort: true }\n`, 'paused.yaml');
      const { child, result } = startCli(['run', '--config', rc], { cwd: project });
      while (!existsSync(marker)) await new Promise((r) => setTimeout(r, 20));
      const t0 = Date.now();
      child.kill(signal);
      const r = await result;
      expect(r.code, r.stderr).toBe(code);
      // Well before the grace period after which a stuck run is made to exit (10 s).
      expect(Date.now() - t0).toBeLessThan(8000);
      expect(r.stdout).toContain('run failed (no snapshot committed)');

      // Cleaned up before exiting: no lock, nothing staged, the run in the history.
      const repo = path.join(project, 'repo');
      expect(existsSync(path.join(repo, 'state', 'lock'))).toBe(false);
      expect(await fsp.readdir(path.join(repo, 'staging'))).toEqual(['snapshots']);
      expect(await fsp.readdir(path.join(repo, 'staging', 'snapshots'))).toEqual([]);
      expect(await fsp.readdir(path.join(repo, 'snapshots'))).toEqual(snapshots);
      const history = (await fsp.readFile(path.join(repo, 'state', 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
      expect(history.at(-1)).toMatchObject({ kind: 'run', status: 'failed', errors: [expect.objectContaining({ message: expect.stringContaining(`interrupted by ${signal}`) })] });
    });
  }
});

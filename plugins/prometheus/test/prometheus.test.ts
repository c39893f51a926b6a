/**
 * The prometheus source against a real Prometheus (Debian's): a snapshot through the admin API,
 * streamed and removed; the restored blocks checked block by block (and by promtool), and served
 * by a second Prometheus; and what a user gets wrong said clearly.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedSnapshots, runCli, sourceProject, tempDir } from '../../../test/helpers/cli.js';
import { freePort } from '../../../test/helpers/servers.js';
import { selfSamples, startPrometheus, startScrapingPrometheus, type PrometheusServer } from '../../../test/helpers/prometheus.js';

let work: string;
let prometheus: PrometheusServer;

beforeAll(async () => {
  work = await tempDir('sutazai-prometheus-');
  prometheus = await startScrapingPrometheus();
});
afterAll(async () => {
  await prometheus?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

function project(name: string, source: string): Promise<string> {
  return sourceProject(path.join(work, name), 'metrics', 'prometheus', source);
}


describe('prometheus source', () => {
  it('backs up a snapshot and removes it; the restore test checks every block; the blocks serve queries again', async () => {
    const dir = await project('roundtrip', `url: ${prometheus.url}\ndataDir: ${JSON.stringify(prometheus.dataDir)}`);
    const run = await runCli(['run', '--json'], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    expect(await fsp.readdir(path.join(prometheus.dataDir, 'snapshots'))).toEqual([]);
    const [id] = await committedSnapshots(dir);
    const manifest = JSON.parse(await fsp.readFile(path.join(dir, 'backups', 'snapshots', id!, 'manifest.json'), 'utf8'));
    const blocks = manifest.artifacts[0].meta.blocks as { ulid: string; numSamples: number }[];
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.reduce((n, b) => n + b.numSamples, 0)).toBeGreaterThan(0);

    const test = await runCli(['restore-test', '--json'], { cwd: dir });
    expect(test.code, test.stdout + test.stderr).toBe(0);
    const names = test.json().artifacts[0].checks.map((c: { name: string }) => c.name);
    expect(names).toEqual(expect.arrayContaining([...blocks.map((b) => `block ${b.ulid}`), 'promtool tsdb list']));

    const out = path.join(dir, 'out');
    expect((await runCli(['restore', 'latest', '--to', out], { cwd: dir })).code).toBe(0);
    const restoredBlocks = path.join(dir, 'restored-tsdb');
    await fsp.mkdir(restoredBlocks);
    execFileSync('tar', ['-xf', path.join(out, 'metrics', 'prometheus-snapshot.tar'), '-C', restoredBlocks]);
    const restored = await startPrometheus([], { storage: restoredBlocks });
    try {
      expect(await selfSamples(restored)).toBeGreaterThan(2);
    } finally {
      await restored.stop();
    }
  });

  it('the restore test names a block that does not match the manifest', async () => {
    const dir = await project('tampered', `url: ${prometheus.url}\ndataDir: ${JSON.stringify(prometheus.dataDir)}`);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    const [id] = await committedSnapshots(dir);
    const file = path.join(dir, 'backups', 'snapshots', id!, 'manifest.json');
    const manifest = JSON.parse(await fsp.readFile(file, 'utf8'));
    const block = manifest.artifacts[0].meta.blocks[0];
    block.numSamples += 7;
    await fsp.writeFile(file, JSON.stringify(manifest));
    const test = await runCli(['restore-test'], { cwd: dir });
    expect(test.code).toBe(1);
    expect(test.stdout).toContain(`block ${block.ulid}: numSamples ${block.numSamples - 7}, the manifest says ${block.numSamples}`);
  });

  it('says what is wrong: the admin API off, nothing listening, a dataDir that is not Prometheus\'s; nothing is committed', async () => {
    const plain = await startPrometheus([], {});
    try {
      const off = await project('admin-off', `url: ${plain.url}\ndataDir: ${JSON.stringify(plain.dataDir)}`);
      const r1 = await runCli(['run'], { cwd: off });
      expect(r1.code).toBe(1);
      expect(r1.stderr).toContain('the admin API is off: start Prometheus with --web.enable-admin-api');
      expect(await committedSnapshots(off)).toEqual([]);
    } finally {
      await plain.stop();
    }

    const nobody = await project('nobody', `url: http://127.0.0.1:${await freePort()}\ndataDir: /nonexistent`);
    const r2 = await runCli(['run'], { cwd: nobody });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/sources\.metrics: the snapshot API of Prometheus at http:\/\/127\.0\.0\.1:\d+: cannot reach it \(ECONNREFUSED\)/);

    const elsewhere = await project('elsewhere', `url: ${prometheus.url}\ndataDir: ${JSON.stringify(path.join(work, 'not-the-data-dir'))}`);
    const r3 = await runCli(['run'], { cwd: elsewhere });
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/Prometheus wrote snapshot \S+, but .*not-the-data-dir\/snapshots\/\S+ cannot be read here \(ENOENT\): dataDir must be Prometheus's --storage\.tsdb\.path/);
    expect(await committedSnapshots(elsewhere)).toEqual([]);
    // That snapshot stays in Prometheus's real folder (this host could not see it): remove it.
    await fsp.rm(path.join(prometheus.dataDir, 'snapshots'), { recursive: true, force: true });
  });

  it('refuses a username without a password when the config loads', async () => {
    const dir = await project('half-auth', `url: ${prometheus.url}\ndataDir: /x\nusername: admin`);
    const r = await runCli(['config', 'validate'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('sources.metrics.password');
  });
});

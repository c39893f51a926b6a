/** The rest of the command line: help, version, init, config show, dry runs, prune and status. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { REPO_ROOT, runCli, tempDir, writeRc } from '../helpers/cli.js';

let work: string;

beforeAll(async () => {
  work = await tempDir();
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n' });
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('the command line', () => {
  it('--version prints the CLI and core versions; --help lists the commands', async () => {
    const cliVersion = JSON.parse(await fsp.readFile(path.join(REPO_ROOT, 'packages/cli/package.json'), 'utf8')).version;
    const v = await runCli(['--version'], { cwd: work });
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(new RegExp(`^${cliVersion.replace(/\./g, '\\.')} \\(core \\d+\\.\\d+\\.\\d+\\)$`));
    const h = await runCli(['--help'], { cwd: work });
    expect(h.code).toBe(0);
    for (const c of ['run', 'list', 'restore', 'verify', 'prune', 'restore-test', 'status', 'config', 'init']) expect(h.stdout).toMatch(new RegExp(`\\n  ${c}\\b`));
    const rh = await runCli(['restore', '--help'], { cwd: work });
    expect(rh.stdout).toContain('--into <url>');
  });

  it('init writes a starter rc file that validates once its folder exists, and will not overwrite it', async () => {
    const dir = await tempDir();
    try {
      const r = await runCli(['init'], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      const rc = path.join(dir, '.sutazai-backuprc');
      expect((await fsp.stat(rc)).mode & 0o777).toBe(0o600);
      await fsp.mkdir(path.join(dir, 'config'));
      const v = await runCli(['config', 'validate'], { cwd: dir });
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toMatch(/^ok: .*\.sutazai-backuprc: 1 source\(s\)/);
      const again = await runCli(['init'], { cwd: dir });
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/already exists/);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('config show prints the interpolated config with secrets masked', async () => {
    await writeRc(
      work,
      `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: ["\${DATA_DIR}"], redactKeys: ["\${SHOW_TOKEN}"] }\n`,
      'show.yaml',
    );
    const r = await runCli(['config', 'show', '--config', 'show.yaml'], { cwd: work, env: { DATA_DIR: './data', SHOW_TOKEN: 'tok-visible-only-as-stars' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('tok-visible-only-as-stars');
    expect(r.json().config.sources.configs.redactKeys).toEqual(['***']);
    expect(r.json().config.sources.configs.paths).toEqual(['./data']);
  });

  it('run --dry-run says what it would archive and writes nothing', async () => {
    const dir = await tempDir();
    try {
      await writeTree(path.join(dir, 'data'), { 'a.txt': 'a\n' });
      await writeRc(dir, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\n`);
      const r = await runCli(['run', '--dry-run'], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/would archive configs \(tree\)/);
      expect(await fsp.readdir(dir)).not.toContain('repo');
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('prune applies the profile\'s retention: --dry-run deletes nothing, then prune does', async () => {
    await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\nprofiles:\n  hourly: { sources: "*", retention: { last: 2 } }\n`);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      // Keep `run`'s own prune out of the way to test the command: a wide policy while running.
      const rc = await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\nprofiles:\n  hourly: { sources: "*", retention: { last: 10 } }\n`, 'wide.yaml');
      const r = await runCli(['run', '--json', '--config', rc], { cwd: work });
      expect(r.code, r.stderr).toBe(0);
      ids.push(r.json().snapshot);
    }
    const dry = await runCli(['prune', '--dry-run', '--json'], { cwd: work });
    expect(dry.code, dry.stderr).toBe(0);
    const [plan] = dry.json();
    expect(plan.removed.map((d: { id: string }) => d.id)).toEqual([ids[0]]);
    expect((await runCli(['list', '--json'], { cwd: work })).json()).toHaveLength(3);

    const real = await runCli(['prune'], { cwd: work });
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toContain(`- ${ids[0]}`);
    const left = (await runCli(['list', '--json'], { cwd: work })).json().map((s: { id: string }) => s.id);
    expect(left).toEqual(ids.slice(1));
    await expect(fsp.access(path.join(work, 'repo', 'snapshots', ids[0]!))).rejects.toThrow();
  });

  it('status reports freshness, the last run and 3-2-1 in DESIGN\'s shape', async () => {
    const r = await runCli(['status', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const status = r.json();
    expect(status.healthy).toBe(true);
    expect(status.checks.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['freshness', 'last-run']));
    expect(status.strategy).toEqual({ copies: 1, media: 1, offsite: false, compliant: false });
    expect(status.snapshots).toBe(2);
  });

  it('status is unhealthy (exit 1) when the newest snapshot is older than maxAge', async () => {
    const rc = await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\nprofiles:\n  hourly: { sources: "*", retention: { last: 2 } }\nchecks: { maxAge: 1s }\n`, 'strict.yaml');
    await new Promise((r) => setTimeout(r, 2100));
    const r = await runCli(['status', '--config', rc], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/UNHEALTHY/);
    expect(r.stdout).toMatch(/FAIL freshness: latest snapshot .* old \(max/);
  });
});

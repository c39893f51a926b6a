/**
 * Bad input gets a clear error and changes nothing: broken rc files exit 2 naming the file and
 * the key path; a missing or unreadable source fails the run (exit 1) and commits no snapshot;
 * damaged artifacts are named by verify and refused by restore before anything is written.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { runCli, tempDir, writeRc } from '../helpers/cli.js';

let work: string;

beforeEach(async () => {
  work = await tempDir();
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n', sub: { 'b.txt': 'beta\n' } });
});

afterEach(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

const goodSources = `sources:
  configs: { use: files, paths: [./data] }
`;

async function expectNothingWritten() {
  expect(await fsp.readdir(work)).not.toContain('repo');
}

describe('a broken rc file exits 2, names the file and the key path, and changes nothing', () => {
  it('YAML syntax error', async () => {
    const rc = await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data]\n`);
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(rc);
    expect(r.stderr).toMatch(/YAML syntax error/);
    expect(r.stderr).toMatch(/line \d+/);
    await expectNothingWritten();
  });

  it('unknown plugin', async () => {
    const rc = await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: nosuch, paths: [./data] }\n`);
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(rc);
    expect(r.stderr).toContain('sources.configs.use');
    expect(r.stderr).toContain('npm install @sutazai/backup-plugin-nosuch');
    await expectNothingWritten();
  });

  it('a missing required option', async () => {
    const rc = await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, exclude: ["*.tmp"] }\n`);
    const r = await runCli(['config', 'validate'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(rc);
    expect(r.stderr).toMatch(/sources\.configs\.paths: required option is missing \(expected array\)/);
    const run = await runCli(['run'], { cwd: work });
    expect(run.code).toBe(2);
    await expectNothingWritten();
  });

  it('a wrongly typed option, deep in a list', async () => {
    await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data, 42] }\n`);
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/sources\.configs\.paths\[1\]: expected string/);
  });

  it('a missing ${VAR}', async () => {
    const rc = await writeRc(work, `backupRoot: \${BACKUP_TEST_ROOT_UNSET}/repo\n${goodSources}`);
    const r = await runCli(['run'], { cwd: work, env: { BACKUP_TEST_ROOT_UNSET: '' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(rc);
    expect(r.stderr).toContain('backupRoot: environment variable BACKUP_TEST_ROOT_UNSET is not set');
    await expectNothingWritten();
  });

  it('${VAR:-default} and ${VAR} are interpolated', async () => {
    await writeRc(work, `backupRoot: \${BACKUP_TEST_ROOT:-./repo}\nsources:\n  configs: { use: files, paths: ["\${BACKUP_TEST_DATA}"] }\n`);
    const r = await runCli(['config', 'show'], { cwd: work, env: { BACKUP_TEST_DATA: './data' } });
    expect(r.code, r.stderr).toBe(0);
    const shown = r.json();
    expect(shown.backupRoot).toBe(path.join(work, 'repo'));
    expect(shown.config.sources.configs.paths).toEqual(['./data']);
  });

  it('an unknown top-level key', async () => {
    await writeRc(work, `backupRoot: ./repo\nbackuproot: typo\n${goodSources}`);
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/backuproot: unknown option/);
  });

  it('a profile naming an unknown source', async () => {
    await writeRc(work, `backupRoot: ./repo\n${goodSources}profiles:\n  daily: { sources: [configs, nope] }\n`);
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/profiles\.daily\.sources\[1\]: unknown source "nope"/);
  });

  it('a plugin of the wrong kind', async () => {
    await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: local, path: ./x }\n`);
    const r = await runCli(['run'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/sources\.configs\.use: "local" is a destination plugin/);
  });

  it('no rc file at all', async () => {
    const r = await runCli(['list'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no rc file found/);
  });

  it('an unknown command or option is a usage error', async () => {
    await writeRc(work, `backupRoot: ./repo\n${goodSources}`);
    expect((await runCli(['frobnicate'], { cwd: work })).code).toBe(2);
    expect((await runCli(['run', '--no-such-flag'], { cwd: work })).code).toBe(2);
    expect((await runCli(['run', '--profile', 'nope'], { cwd: work })).code).toBe(2);
  });
});

describe('a backupRoot inside what a source archives is a config error', () => {
  it('config validate and run exit 2 naming the key and backupRoot, and write nothing', async () => {
    const rc = await writeRc(work, `backupRoot: ./data/repo\n${goodSources}`);
    const repo = path.join(work, 'data', 'repo');
    const message = `${rc}: sources.configs.paths: backupRoot ${repo} is inside ${path.join(work, 'data')}: every snapshot would hold the snapshots and staging before it, growing run after run; move backupRoot out of ${path.join(work, 'data')}, or exclude it (exclude: ["${repo}"])`;
    for (const args of [['config', 'validate'], ['run']]) {
      const r = await runCli(args, { cwd: work });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(message);
    }
    expect(await fsp.readdir(path.join(work, 'data'))).not.toContain('repo');
    // backupRoot itself as a source path, and a source inside backupRoot.
    await writeRc(work, `backupRoot: ./data\n${goodSources}`);
    expect((await runCli(['config', 'validate'], { cwd: work })).stderr).toContain(`sources.configs.paths: backupRoot ${path.join(work, 'data')} is inside ${path.join(work, 'data')}`);
    await writeRc(work, `backupRoot: .\n${goodSources}`);
    const inside = await runCli(['config', 'validate'], { cwd: work });
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain(`sources.configs.paths: ${path.join(work, 'data')} is inside backupRoot ${work}: a source must not back up the repository itself`);
  });

  it('unless the source leaves backupRoot out', async () => {
    const repo = path.join(work, 'data', 'repo');
    await writeRc(work, `backupRoot: ./data/repo\nsources:\n  configs: { use: files, paths: [./data], exclude: ["${repo}"] }\n`);
    expect((await runCli(['config', 'validate'], { cwd: work })).code).toBe(0);
    for (let i = 0; i < 2; i++) expect((await runCli(['run'], { cwd: work })).code).toBe(0);
    const restored = path.join(work, 'restored');
    expect((await runCli(['restore', 'latest', '--to', restored], { cwd: work })).code).toBe(0);
    expect((await fsp.readdir(path.join(restored, 'configs', work, 'data'))).sort()).toEqual(['a.txt', 'sub']);
  });

  it('in the folder Prometheus writes its snapshots to', async () => {
    const rc = await writeRc(work, `backupRoot: ./prom/snapshots/backups\nsources:\n  metrics: { use: prometheus, dataDir: ./prom }\n`);
    const r = await runCli(['config', 'validate'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${rc}: sources.metrics.dataDir: backupRoot ${path.join(work, 'prom', 'snapshots', 'backups')} is inside ${path.join(work, 'prom', 'snapshots')}`);
  });
});

describe('a source that cannot be read fails the run; nothing of it is committed', () => {
  it('a path that does not exist', async () => {
    await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data, ./missing] }\n  other: { use: files, paths: [./data] }\n`);
    const r = await runCli(['run', '--json'], { cwd: work });
    expect(r.code).toBe(1);
    const report = r.json();
    expect(report.status).toBe('failed');
    expect(report.errors[0]).toMatchObject({ plugin: 'sources.configs', code: 'E_SOURCE' });
    expect(report.errors[0].message).toContain(path.join(work, 'missing'));
    // The other source is committed in a partial snapshot that holds nothing of configs.
    const list = await runCli(['list', '--json'], { cwd: work });
    expect(list.json()).toEqual([expect.objectContaining({ id: report.snapshot, failedSources: [expect.objectContaining({ source: 'configs' })] })]);
    expect(list.json()[0].artifacts.map((a: { source: string }) => a.source)).toEqual(['other']);
    expect(await fsp.readdir(path.join(work, 'repo', 'snapshots', report.snapshot))).not.toContain('configs.tar.zst');
    // No half snapshot lying around in staging either.
    expect(await fsp.readdir(path.join(work, 'repo', 'staging', 'snapshots'))).toEqual([]);
    expect((await fsp.readdir(path.join(work, 'repo', 'staging'))).filter((e) => e !== 'snapshots')).toEqual([]);
  });

  it('a file that cannot be read (run as an unprivileged user)', async () => {
    const uid = Number(execFileSync('id', ['-u', 'sutazai-test']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'sutazai-test']).toString().trim());
    await writeTree(path.join(work, 'data'), { 'secret.bin': 'no peeking\n' });
    await fsp.chmod(path.join(work, 'data', 'secret.bin'), 0o000);
    await writeRc(work, `backupRoot: ./repo\n${goodSources}`);
    // The user may read everything else and write the repository.
    for (const p of [work, path.join(work, '.sutazai-backuprc')]) await fsp.chown(p, uid, gid);
    await fsp.chmod(work, 0o755);
    const r = await runCli(['run', '--json'], { cwd: work, uid, gid, env: { HOME: work } });
    expect(r.code, r.stderr).toBe(1);
    const report = r.json();
    expect(report.snapshot).toBeNull();
    expect(report.errors[0].message).toContain(`${path.join(work, 'data', 'secret.bin')} cannot be read (permission denied)`);
    const list = await runCli(['list', '--json'], { cwd: work, uid, gid });
    expect(list.json()).toEqual([]);
  });
});

describe('damaged artifacts', () => {
  async function backup(): Promise<{ id: string; file: string }> {
    await writeTree(path.join(work, 'data'), { 'big.txt': 'x'.repeat(200_000) + 'the end\n' });
    await writeRc(work, `backupRoot: ./repo\n${goodSources}`);
    const r = await runCli(['run', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const id = r.json().snapshot as string;
    return { id, file: path.join(work, 'repo', 'snapshots', id, 'configs.tar.zst') };
  }

  it('a flipped byte: verify exits 1 naming the artifact; restore refuses before writing anything', async () => {
    const { id, file } = await backup();
    const bytes = await fsp.readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await fsp.writeFile(file, bytes);

    const v = await runCli(['verify', id], { cwd: work });
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(new RegExp(`FAILED ${id}/configs\\.tar\\.zst: .*sha256 mismatch`));

    const out = path.join(work, 'restored');
    const r = await runCli(['restore', id, '--to', out], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('configs.tar.zst');
    expect(await fsp.readdir(out).catch(() => [])).toEqual([]);
  });

  it('a truncated artifact: verify exits 1 naming it; restore refuses before writing anything', async () => {
    const { id, file } = await backup();
    const { size } = await fsp.stat(file);
    await fsp.truncate(file, Math.floor(size / 3));

    const v = await runCli(['verify', 'latest', '--json'], { cwd: work });
    expect(v.code).toBe(1);
    const result = v.json();
    expect(result.ok).toBe(false);
    expect(result.snapshots[0].artifacts[0]).toMatchObject({ file: 'configs.tar.zst', ok: false });
    expect(result.snapshots[0].artifacts[0].error).toMatch(/truncated/);

    const out = path.join(work, 'restored');
    const r = await runCli(['restore', id, '--to', out], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/configs\.tar\.zst: truncated/);
    expect(await fsp.readdir(out).catch(() => [])).toEqual([]);
  });

  it('a missing artifact: verify names it', async () => {
    const { id, file } = await backup();
    await fsp.rm(file);
    const v = await runCli(['verify', id], { cwd: work });
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/FAILED .*configs\.tar\.zst: .*does not exist/);
  });
});

/**
 * The foundation end to end, through the real CLI: a tree with nested folders, an empty file, a
 * 50 MB incompressible file, unicode names and a symlink, plus a WAL-mode SQLite database that
 * another process keeps writing to during the backup. After restore every file is byte-identical
 * with its mode, and the database passes integrity_check and holds every row committed before the
 * run began.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTree, writeTree } from '@sutazai/backup-testkit';
import { REPO_ROOT, runCli, tempDir, writeRc } from '../helpers/cli.js';

let work: string;
let tree: string;
let dbFile: string;
let writer: ChildProcess | undefined;

beforeAll(async () => {
  work = await tempDir();
  tree = path.join(work, 'data', 'opt', 'sutazaiapp');
  await writeTree(tree, {
    config: {
      'app.yaml': 'server:\n  port: 8080\n',
      'run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
      'private.key': { content: 'not really a key\n', mode: 0o600 },
      nested: { deeper: { deepest: { 'leaf.txt': 'leaf\n', 'empty.txt': '' } } },
      'données – naïve': { '日本語のファイル.txt': 'こんにちは\n', 'emoji-🚀.md': '# rocket\n' },
      current: { symlink: 'app.yaml' },
    },
    models: {},
  });
  await fsp.chmod(path.join(tree, 'config', 'nested'), 0o750);
  // 50 MB that zstd cannot compress.
  const big = await fsp.open(path.join(tree, 'models', 'weights.bin'), 'w');
  for (let i = 0; i < 50; i++) await big.write(randomBytes(1024 * 1024));
  await big.close();

  dbFile = path.join(work, 'data', 'agents.db');
  writer = spawn(process.execPath, [path.join(REPO_ROOT, 'test/fixtures/sqlite-writer.mjs'), dbFile], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    writer!.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    writer!.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
  });

  await writeRc(
    work,
    `backupRoot: ./repo
sources:
  app: { use: files, paths: [./data/opt/sutazaiapp] }
  agents: { use: sqlite, path: ./data/agents.db }
`,
  );
});

afterAll(async () => {
  writer?.kill('SIGKILL');
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe('backup and restore through the CLI', () => {
  let committedBefore = 0;
  let snapshot: string;

  it('backs up while another process writes to the database', async () => {
    const probe = new Database(dbFile, { readonly: true });
    committedBefore = probe.prepare('SELECT max(id) FROM ticks').pluck().get() as number;
    probe.close();
    expect(committedBefore).toBeGreaterThanOrEqual(200);

    const r = await runCli(['run', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const report = r.json();
    expect(report.status).toBe('success');
    snapshot = report.snapshot;
    expect(snapshot).toMatch(/^\d{8}T\d{6}Z-default-[0-9a-f]{4}$/);
    expect(report.artifacts.map((a: { file: string }) => a.file).sort()).toEqual(['agents.sqlite.zst', 'app.tar.zst']);

    // The writer really was writing during the run.
    const after = new Database(dbFile, { readonly: true });
    expect(after.prepare('SELECT max(id) FROM ticks').pluck().get() as number).toBeGreaterThan(committedBefore);
    after.close();
  });

  it('lists the snapshot with DESIGN\'s fields', async () => {
    const r = await runCli(['list', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const list = r.json();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: snapshot, profile: 'default' });
    expect(list[0].bytes).toBeGreaterThan(50 * 1024 * 1024);
    expect(Date.parse(list[0].createdAt)).not.toBeNaN();
  });

  it('verifies it, including SQLite integrity_check', async () => {
    const r = await runCli(['verify', 'latest', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const result = r.json();
    expect(result.ok).toBe(true);
    const checks = result.snapshots[0].artifacts.flatMap((a: { checks: { name: string }[] }) => a.checks.map((c) => c.name));
    expect(checks).toContain('integrity_check');
    expect(checks).toContain('sha256');
  });

  it('restores every file byte-identical with its mode, and the database with every row committed before the run', async () => {
    const out = path.join(work, 'restored');
    const r = await runCli(['restore', snapshot, '--to', out], { cwd: work });
    expect(r.code, r.stderr).toBe(0);

    const restoredTree = path.join(out, 'app', tree.slice(1));
    const [expected, actual] = await Promise.all([describeTree(tree), describeTree(restoredTree)]);
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
    expect(actual).toEqual(expected);
    expect(actual['config/nested/deeper/deepest/empty.txt']).toMatchObject({ type: 'file', size: 0 });
    expect(actual['config/current']).toEqual({ type: 'symlink', mode: expect.any(Number), target: 'app.yaml' });
    expect(actual['models/weights.bin']!.size).toBe(50 * 1024 * 1024);
    expect(actual['config/run.sh']!.mode).toBe(0o755);

    const restoredDb = path.join(out, 'agents', 'agents.db');
    const db = new Database(restoredDb, { readonly: true });
    try {
      expect(db.prepare('PRAGMA integrity_check').pluck().get()).toBe('ok');
      const rows = db.prepare('SELECT count(*) FROM ticks WHERE id <= ?').pluck().get(committedBefore);
      expect(rows).toBe(committedBefore);
      // A consistent snapshot: ids have no gaps up to the last one copied.
      const { n, max } = db.prepare('SELECT count(*) AS n, max(id) AS max FROM ticks').get() as { n: number; max: number };
      expect(n).toBe(max);
    } finally {
      db.close();
    }
  });

  it('refuses to restore into a non-empty target and leaves it as it was', async () => {
    const out = path.join(work, 'occupied');
    await writeTree(out, { app: { 'keep-me.txt': 'precious\n' } });
    const r = await runCli(['restore', snapshot, '--to', out, '--source', 'app'], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/occupied\/app is not empty/);
    expect(await fsp.readdir(path.join(out, 'app'))).toEqual(['keep-me.txt']);
    expect(await fsp.readFile(path.join(out, 'app', 'keep-me.txt'), 'utf8')).toBe('precious\n');
    // Nothing half-restored beside it either.
    expect((await fsp.readdir(out)).sort()).toEqual(['app']);
  });

  it('decodes with stock tools: zstd -d | tar -t', async () => {
    const archive = path.join(work, 'repo', 'snapshots', snapshot, 'app.tar.zst');
    const listing = await new Promise<string>((resolve, reject) => {
      const child = spawn('sh', ['-c', `zstd -dc "${archive}" | tar -tf -`]);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
    });
    expect(listing).toContain(`${tree.slice(1)}/config/données – naïve/日本語のファイル.txt`);
    expect(listing).toContain(`${tree.slice(1)}/models/weights.bin`);
  });

  it('passes its restore test, which compares table row counts', async () => {
    const r = await runCli(['restore-test', snapshot, '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const result = r.json();
    expect(result.ok).toBe(true);
    const sqlite = result.artifacts.find((a: { source: string }) => a.source === 'agents');
    expect(sqlite.checks.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['integrity_check', 'rows ticks']));
  });
});

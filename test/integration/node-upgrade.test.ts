/**
 * The workspace is an install made under Node 20 with native builds (better-sqlite3 compiled for
 * Node 20's ABI, zstd-napi through Node-API). Run under Node 24, as after an upgrade of Node:
 * zstd-napi still loads (Node-API is stable across versions), better-sqlite3 does not, and the
 * sqlite source says how to fix it. Only the sqlite source fails: the run commits a partial
 * snapshot with the other sources.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cachedNode } from '../../scripts/node-binaries.mjs';
import { committedSnapshots, logMessages, runCli, tempDir, writeRc } from '../helpers/cli.js';

const node24 = cachedNode(24);
let dir: string;

beforeAll(async () => {
  dir = await tempDir('sutazai-upgrade-');
  await fsp.mkdir(path.join(dir, 'config'));
  await fsp.writeFile(path.join(dir, 'config', 'app.yaml'), 'model: llama3\n');
  const db = new Database(path.join(dir, 'agents.db'));
  db.exec('CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO agents (name) VALUES (\'planner\'), (\'coder\');');
  db.close();
  await writeRc(
    dir,
    ['backupRoot: ./backups', 'sources:', '  configs: { use: files, paths: [./config] }', '  agents: { use: sqlite, path: ./agents.db }', ''].join('\n'),
  );
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe.skipIf(!node24)('an install built under Node 20, run under Node 24', () => {
  it('only the sqlite source fails, with the rebuild hint and its name; the files source is committed in a partial snapshot that restores', async () => {
    const run = await runCli(['run', '--json'], { cwd: dir, node: node24! });
    expect(run.code).toBe(1);
    const report = run.json<{ status: string; snapshot: string | null; errors: { plugin: string; message: string }[]; failedSources: { source: string }[] }>();
    expect(report.status).toBe('failed');
    expect(report.errors).toHaveLength(1);
    const [error] = report.errors;
    expect(error!.plugin).toBe('sources.agents');
    expect(error!.message).toContain('npm rebuild better-sqlite3');
    expect(error!.message).toMatch(/NODE_MODULE_VERSION \d+, this Node\.js needs \d+/);
    expect(report.failedSources.map((f) => f.source)).toEqual(['agents']);
    const [id] = await committedSnapshots(dir);
    expect(report.snapshot).toBe(id);

    expect((await runCli(['verify', id!], { cwd: dir, node: node24! })).code).toBe(0);
    const to = path.join(dir, 'restored');
    expect((await runCli(['restore', id!, '--to', to], { cwd: dir, node: node24! })).code).toBe(0);
    const restored = path.join(to, 'configs', dir, 'config', 'app.yaml');
    expect(await fsp.readFile(restored, 'utf8')).toBe('model: llama3\n');
    await expect(fsp.access(path.join(to, 'agents'))).rejects.toThrow();
  });

  it('the gpg plugin does not load its addon built for Node 20: node:crypto encrypts, a debug line says why, the snapshot verifies', async () => {
    const project = path.join(dir, 'encrypted');
    await fsp.mkdir(project);
    await writeRc(
      project,
      ['backupRoot: ./backups', 'encryption: { use: gpg, passphrase: correct-horse-battery }', 'sources:', `  configs: { use: files, paths: [${path.join(dir, 'config')}] }`, ''].join('\n'),
    );
    const here = await runCli(['run'], { cwd: project });
    expect(here.code, here.stderr).toBe(0);
    expect(logMessages(here.stderr)).toContain('encryption: AES through the addon');

    const upgraded = await runCli(['run'], { cwd: project, node: node24! });
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(logMessages(upgraded.stderr)).toMatch(/encryption: AES through node:crypto: the addon was built for Node\.js v20\.\S+ \(OpenSSL [^)]+\), this is v24\./);
    // (Retention keeps one snapshot a day: the second run's.)
    const [id] = await committedSnapshots(project);
    const verified = await runCli(['verify', id!], { cwd: project, node: node24! });
    expect(verified.code, verified.stderr).toBe(0);
  });
});

/**
 * `repository: { format: restic }` end to end, through the real CLI: a files source and a command
 * source stored as one restic snapshot per run at backupRoot, which stock restic 0.14 lists,
 * checks with --read-data and restores byte for byte; our list, verify, restore --to and prune
 * on the same repository; a second run after a small change stores little; a wrong password and
 * a flipped byte in a pack are clear failures that delete nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeRc, type CliResult } from '../helpers/cli.js';
import { restic } from '../helpers/restic.js';

const PASSWORD = 'correct horse battery staple';
let work: string;
let repo: string;
let data: string;

const rc = (retention: string) => `backupRoot: ./repo
host: testhost
repository: { format: restic, password: "\${SUTAZAI_BACKUP_PASSWORD}" }
retention: ${retention}
sources:
  app: { use: files, paths: [./data] }
  dump: { use: command, command: "head -c 3000000 /dev/zero; echo end" }
`;

const cli = (args: string[], password = PASSWORD): Promise<CliResult> =>
  runCli(args, { cwd: work, env: { SUTAZAI_BACKUP_PASSWORD: password }, timeoutMs: 180_000 });

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p);
      if (e.isDirectory()) await walk(p);
      else if (e.isSymbolicLink()) out[rel] = `-> ${await fsp.readlink(p)}`;
      else out[rel] = createHash('sha256').update(await fsp.readFile(p)).digest('hex');
    }
  };
  await walk(dir);
  return out;
}

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fsp.stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}

async function packs(): Promise<string[]> {
  const dir = path.join(repo, 'data');
  const found: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) found.push(path.join(e.parentPath, e.name));
  return found;
}

async function resticSnapshots(): Promise<{ id: string; short_id: string; tags: string[]; paths: string[]; hostname: string }[]> {
  const r = await restic(repo, PASSWORD, ['snapshots', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  work = await tempDir('sutazai-restic-format-');
  repo = path.join(work, 'repo');
  data = path.join(work, 'data');
  await fsp.mkdir(path.join(data, 'config', 'nested'), { recursive: true });
  await fsp.writeFile(path.join(data, 'config', 'app.yaml'), 'server:\n  port: 8080\n');
  await fsp.writeFile(path.join(data, 'config', 'nested', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await fsp.writeFile(path.join(data, 'config', 'empty'), '');
  await fsp.symlink('app.yaml', path.join(data, 'config', 'current'));
  await fsp.writeFile(path.join(data, 'model.bin'), randomBytes(8 * 1024 * 1024));
  await fsp.writeFile(path.join(data, 'app.log'), 'line\n'.repeat(200_000));
  await writeRc(work, rc('{ last: 10 }'));
});

afterAll(async () => {
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe('repository.format restic through the CLI', () => {
  let first: string;

  it('a run writes one restic snapshot that stock restic lists, checks and restores byte for byte', async () => {
    const r = await cli(['run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    first = r.json().snapshot;
    const snaps = await resticSnapshots();
    expect(snaps).toHaveLength(1);
    expect(snaps[0]!.tags).toEqual(['sutazai-backup', 'profile:default', `id:${first}`]);
    expect(snaps[0]!.paths).toEqual(['/.sutazai', '/app', '/dump']);
    expect(snaps[0]!.hostname).toBe('testhost');

    const ls = await restic(repo, PASSWORD, ['ls', 'latest']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain(`/app${data}/config/nested/run.sh`);
    expect(ls.stdout).toContain('/dump/dump.out');

    const check = await restic(repo, PASSWORD, ['check', '--read-data']);
    expect(check.code, check.stdout + check.stderr).toBe(0);

    const target = path.join(work, 'restic-restore');
    const restore = await restic(repo, PASSWORD, ['restore', 'latest', '--target', target]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await tree(path.join(target, 'app', data))).toEqual(await tree(data));
    const dump = await fsp.readFile(path.join(target, 'dump', 'dump.out'));
    expect(dump.length).toBe(3_000_004);
    expect(dump.subarray(-4).toString()).toBe('end\n');
  });

  it('list, verify and restore --to work on it', async () => {
    const list = await cli(['list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.stringify(list.json())).toContain(first);

    const verify = await cli(['verify', '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    const restoreTest = await cli(['restore-test', '--json']);
    expect(restoreTest.code, restoreTest.stderr).toBe(0);
    const tested = restoreTest.json();
    expect(tested.ok).toBe(true);
    // The tree's restore is checked against the entries the run recorded (5 files, a symlink).
    expect(JSON.stringify(tested)).toMatch(/5 files, \d+ folders, 1 symlinks \(manifest: 5, \d+, 1\)/);
    const status = await cli(['status']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/ok +authentication: restic's format encrypts and authenticates/);

    const short = (await resticSnapshots())[0]!.short_id;
    const to = path.join(work, 'our-restore');
    const restore = await cli(['restore', short, '--to', to]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await tree(path.join(to, 'app', data))).toEqual(await tree(data));
    expect((await fsp.stat(path.join(to, 'dump', 'dump.out'))).size).toBe(3_000_004);
    expect((await fsp.stat(path.join(to, 'app', data, 'config', 'nested', 'run.sh'))).mode & 0o777).toBe(0o755);
  });

  it('a second run after one file changed adds far less than the data', async () => {
    const before = await du(repo);
    await fsp.appendFile(path.join(data, 'app.log'), 'one more line\n');
    const r = await cli(['run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const grown = (await du(repo)) - before;
    // The data is ~12 MB (8 MiB random, 1 MB of log, a 3 MB dump); one changed chunk of the log and the trees are new.
    expect(grown).toBeGreaterThan(0);
    expect(grown).toBeLessThan(1024 * 1024);
    const snaps = await resticSnapshots();
    expect(snaps).toHaveLength(2);
    const check = await restic(repo, PASSWORD, ['check', '--read-data']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it('a wrong password is a clear error that deletes nothing', async () => {
    const before = await tree(repo);
    const list = await cli(['list'], 'not the password');
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/wrong password/);
    const run = await cli(['run'], 'not the password');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/wrong password/);
    const after = await tree(repo);
    // The failed run may have added its history line under state/: nothing of the repository changed.
    for (const key of Object.keys(before).filter((k) => !k.startsWith('state/'))) expect(after[key]).toBe(before[key]);
    expect(Object.keys(after).filter((k) => !k.startsWith('state/') && !(k in before))).toEqual([]);
  });

  it('prune with retention { last: 1 } leaves one snapshot and a repository restic checks', async () => {
    await writeRc(work, rc('{ last: 1 }'));
    const r = await cli(['prune', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const snaps = await resticSnapshots();
    expect(snaps).toHaveLength(1);
    expect(snaps[0]!.tags).not.toContain(`id:${first}`);
    const check = await restic(repo, PASSWORD, ['check', '--read-data']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
  });

  it('a flipped byte in a pack: verify fails naming the snapshot; the next run and prune delete nothing', async () => {
    await writeRc(work, rc('{ last: 1 }'));
    const latest = (await cli(['list', '--json'])).json();
    const id = JSON.stringify(latest).match(/\d{8}T\d{6}Z-default-[0-9a-f]+/)![0];
    // The largest pack holds the random model's chunks.
    const sized = await Promise.all((await packs()).map(async (p) => ({ p, size: (await fsp.stat(p)).size })));
    const victim = sized.sort((a, b) => b.size - a.size)[0]!.p;
    const bytes = await fsp.readFile(victim);
    bytes[1000] ^= 0x01;
    await fsp.writeFile(victim, bytes);

    const verify = await cli(['verify']);
    expect(verify.code).toBe(1);
    expect(verify.stdout + verify.stderr).toContain(id);

    const packsBefore = (await packs()).sort();
    const snapsBefore = (await resticSnapshots()).map((s) => s.id);
    const run = await cli(['run']);
    expect(run.code).toBe(1);
    const prune = await cli(['prune']);
    expect(prune.code).not.toBe(2);
    expect((await resticSnapshots()).map((s) => s.id)).toEqual(snapsBefore);
    const packsAfter = await packs();
    for (const p of packsBefore) expect(packsAfter).toContain(p);
  });
});

describe('a partial snapshot in the restic format', () => {
  it('holds the sources that succeeded and nothing of the one that failed mid-stream; restic checks it', async () => {
    const dir = await tempDir('sutazai-restic-partial-');
    try {
      await fsp.mkdir(path.join(dir, 'data'));
      await fsp.writeFile(path.join(dir, 'data', 'app.yaml'), 'port: 8080\n');
      await writeRc(
        dir,
        `backupRoot: ./repo
repository: { format: restic, password: "\${SUTAZAI_BACKUP_PASSWORD}" }
sources:
  app: { use: files, paths: [./data] }
  dump: { use: command, command: "head -c 2000000 /dev/urandom; exit 3" }
`,
      );
      const r = await runCli(['run', '--json'], { cwd: dir, env: { SUTAZAI_BACKUP_PASSWORD: PASSWORD }, timeoutMs: 180_000 });
      expect(r.code, r.stderr).toBe(1);
      expect(r.json().failedSources.map((f: { source: string }) => f.source)).toEqual(['dump']);
      const snaps = JSON.parse((await restic(path.join(dir, 'repo'), PASSWORD, ['snapshots', '--json'])).stdout);
      expect(snaps).toHaveLength(1);
      expect(snaps[0].paths).toEqual(['/.sutazai', '/app']);
      const ls = await restic(path.join(dir, 'repo'), PASSWORD, ['ls', 'latest']);
      expect(ls.stdout).toContain('/app');
      expect(ls.stdout).not.toContain('/dump');
      const check = await restic(path.join(dir, 'repo'), PASSWORD, ['check', '--read-data']);
      expect(check.code, check.stdout + check.stderr).toBe(0);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

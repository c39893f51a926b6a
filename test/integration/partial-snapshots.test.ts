/**
 * Partial snapshots (issue 16): a source that fails does not cost the others their backup. Real
 * parts: a PostgreSQL server that is shut down and started again, a files source, a command
 * source that hangs, the webhook notifier with a receiver on loopback, the built CLI.
 */
import { existsSync, promises as fsp, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { logMessages, REPO_ROOT, runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';
import { expectSchema } from '../helpers/json-schemas.js';
import { signedWebhook, type Receiver, type WebhookDelivery } from '../helpers/notify-receivers.js';
import { startHttpReceiver, startPostgres, type HttpReceiver, type PostgresServer } from '../helpers/servers.js';

/** A source whose dump is a shell line run by the engine (the program form), with no timeout of its own. */
const HANGING_DUMP = `import { defineSource, z } from '@sutazai/backup-core';
export default defineSource({
  name: 'hanging-dump',
  options: z.object({ script: z.string() }).strict(),
  collect(ctx, options) {
    return [{ type: 'file', name: ctx.instance, ext: 'bin', filename: 'dump.bin', open: () => ({ command: '/bin/sh', args: ['-c', options.script] }) }];
  },
});
`;

/** Whether a pg_dump started by the process `parent` (or its children) is running. */
function pgDumpRunning(parent: number): boolean {
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (path.basename(cmd.split('\0')[0]!) !== 'pg_dump') continue;
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === parent) return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

let work: string;
let pg: PostgresServer;
let http: HttpReceiver;
let hook: Receiver<WebhookDelivery>;

beforeAll(async () => {
  work = await tempDir('sutazai-partial-');
  hook = signedWebhook('/hook', undefined);
  http = await startHttpReceiver(hook.handler);
  pg = await startPostgres();
  await pg.psql('CREATE DATABASE shop');
  await pg.psql('CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 50)', 'shop');
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  await http?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

async function project(name: string, rc: (dir: string) => string): Promise<string> {
  const dir = path.join(work, name);
  await writeTree(path.join(dir, 'data'), { 'app.yaml': 'port: 8080\n' });
  await writeRc(dir, rc(dir));
  return dir;
}

async function manifestOf(dir: string, id: string): Promise<any> {
  return JSON.parse(await fsp.readFile(path.join(dir, 'repo', 'snapshots', id, 'manifest.json'), 'utf8'));
}

describe('a source that fails beside one that works', () => {
  it('commits a partial snapshot holding the files, exits 1, alerts once naming postgres; the next run is complete', async () => {
    const dir = await project(
      'pg-down',
      () => `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
  postgres: { use: postgres, url: "postgres://postgres@127.0.0.1:${pg.port}/shop", password: "\${PG_PASSWORD}" }
notify:
  hook: { use: webhook, url: "${http.url}/hook" }
`,
    );
    const env = { PG_PASSWORD: pg.password };
    await pg.halt();
    let r;
    try {
      r = await runCli(['run', '--json'], { cwd: dir, env });
    } finally {
      await pg.start();
    }
    expect(r.code, r.stderr).toBe(1);
    const report = r.json();
    expectSchema('run', report);
    expect(report.status).toBe('failed');
    expect(report.snapshot).toEqual(expect.any(String));
    expect(report.failedSources).toEqual([expect.objectContaining({ source: 'postgres', plugin: 'sources.postgres' })]);
    expect(report.artifacts.map((a: { source: string }) => a.source)).toEqual(['configs']);

    const manifest = await manifestOf(dir, report.snapshot);
    expect(manifest.artifacts.map((a: { source: string }) => a.source)).toEqual(['configs']);
    expect(manifest.failedSources).toEqual([expect.objectContaining({ source: 'postgres', code: expect.stringMatching(/^E_/) })]);
    // Nothing of postgres's artifact is in the snapshot folder.
    expect((await fsp.readdir(path.join(dir, 'repo', 'snapshots', report.snapshot))).sort()).toEqual(['configs.tar.zst', 'manifest.json']);

    const restored = path.join(work, 'restored');
    const restore = await runCli(['restore', report.snapshot, '--to', restored], { cwd: dir, env });
    expect(restore.code, restore.stderr).toBe(0);
    expect(await fsp.readFile(path.join(restored, 'configs', dir.slice(1), 'data', 'app.yaml'), 'utf8')).toBe('port: 8080\n');

    const failures = hook.accepted.filter((d) => d.body.kind === 'run');
    expect(failures).toHaveLength(1);
    expect(failures[0]!.body.event).toBe('failure');
    expect(failures[0]!.body.lines).toEqual(expect.arrayContaining([`partial snapshot ${report.snapshot} committed without postgres`, expect.stringMatching(/^sources\.postgres failed at /)]));

    const listed = await runCli(['list', '--json'], { cwd: dir, env });
    expectSchema('list', listed.json());
    expect(listed.json()[0].failedSources).toEqual([expect.objectContaining({ source: 'postgres' })]);
    expect((await runCli(['list'], { cwd: dir, env })).stdout).toMatch(/FAILED \(PARTIAL\)[\s\S]*partial: source postgres failed/);

    const status = await runCli(['status', '--json'], { cwd: dir, env });
    expectSchema('status', status.json());
    expect(status.json().partial).toEqual({ snapshot: report.snapshot, failedSources: ['postgres'] });
    expect(status.json().checks).toContainEqual(expect.objectContaining({ name: 'last-run', ok: false, detail: expect.stringContaining('partial snapshot without postgres') }));

    const again = await runCli(['run', '--json'], { cwd: dir, env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.json().failedSources).toEqual([]);
    const complete = await manifestOf(dir, again.json().snapshot);
    expect(complete.failedSources).toBeUndefined();
    expect(complete.artifacts.map((a: { source: string }) => a.source).sort()).toEqual(['configs', 'postgres']);
    expect((await runCli(['status', '--json'], { cwd: dir, env })).json().partial).toBeNull();
  }, 120_000);

  it('PostgreSQL stopped while pg_dump runs: the files are committed, postgres named as failed; the next run is complete', async () => {
    // Enough rows that pg_dump is still reading when the server goes down under it.
    await pg.psql('CREATE DATABASE bigshop');
    await pg.psql("CREATE TABLE lines (id int PRIMARY KEY, body text); INSERT INTO lines SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 1500000) g", 'bigshop');
    const dir = await project(
      'pg-stopped-mid-run',
      () => `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
  postgres: { use: postgres, url: "postgres://postgres@127.0.0.1:${pg.port}/bigshop", password: "\${PG_PASSWORD}" }
`,
    );
    const env = { PG_PASSWORD: pg.password };
    const running = startCli(['run', '--json'], { cwd: dir, env, timeoutMs: 180_000 });
    let r;
    try {
      // pg_dump of this database is running: stop the server under it (a fast shutdown ends its session).
      for (const deadline = Date.now() + 60_000; !pgDumpRunning(running.child.pid!); ) {
        if (Date.now() > deadline || running.child.exitCode !== null) throw new Error('pg_dump never started');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await pg.halt();
      r = await running.result;
    } finally {
      await pg.start();
    }
    expect(r.code, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.failedSources).toEqual([expect.objectContaining({ source: 'postgres' })]);
    expect(report.artifacts.map((a: { source: string }) => a.source)).toEqual(['configs']);
    expect((await fsp.readdir(path.join(dir, 'repo', 'snapshots', report.snapshot))).sort()).toEqual(['configs.tar.zst', 'manifest.json']);
    const again = await runCli(['run', '--json'], { cwd: dir, env, timeoutMs: 180_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.json().artifacts.map((a: { source: string }) => a.source).sort()).toEqual(['configs', 'postgres']);
  }, 300_000);

  it('failFast: true commits nothing', async () => {
    const dir = await project(
      'fail-fast',
      () => `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
  broken: { use: command, command: "echo partial; exit 3" }
profiles:
  default: { sources: "*", failFast: true }
`,
    );
    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.json().snapshot).toBeNull();
    expect(existsSync(path.join(dir, 'repo', 'snapshots')) ? await fsp.readdir(path.join(dir, 'repo', 'snapshots')) : []).toEqual([]);
  }, 60_000);
});

describe('timeouts', () => {
  it('stops a source that hangs at its timeout, kills its process group, and commits the others', async () => {
    // A dump program with no time limit of its own (the command source has one): only the engine can stop it.
    const dir = await project('hang', (d) => `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
  stuck: { use: ./hanging-dump.mjs, script: "sleep 1000 & echo $! > ${d}/sleep.pid; wait", timeout: 2s }
`);
    await fsp.symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    await fsp.writeFile(path.join(dir, 'hanging-dump.mjs'), HANGING_DUMP);
    const t0 = Date.now();
    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(1);
    expect(Date.now() - t0).toBeLessThan(60_000);
    const report = r.json();
    expect(report.failedSources).toEqual([expect.objectContaining({ source: 'stuck', message: expect.stringContaining('did not finish within its timeout (2 s)') })]);
    expect((await manifestOf(dir, report.snapshot)).artifacts.map((a: { source: string }) => a.source)).toEqual(['configs']);
    const sleepPid = Number(await fsp.readFile(path.join(dir, 'sleep.pid'), 'utf8'));
    const alive = existsSync(`/proc/${sleepPid}`) && !/\) Z /.test(await fsp.readFile(`/proc/${sleepPid}/stat`, 'utf8').catch(() => ') Z '));
    expect(alive).toBe(false);
    expect(logMessages(r.stderr)).toContain('partial snapshot');
  }, 60_000);

  it("the run's timeout stops every source still working", async () => {
    const dir = await project(
      'run-timeout',
      () => `backupRoot: ./repo
sources:
  configs: { use: files, priority: 10, paths: [./data] }
  stuck: { use: command, command: "sleep 1000" }
profiles:
  default: { sources: "*", timeout: 2s }
`,
    );
    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(1);
    expect(r.json().failedSources).toEqual([expect.objectContaining({ source: 'stuck', message: expect.stringContaining("run's sources did not finish") })]);
    expect(r.json().artifacts.map((a: { source: string }) => a.source)).toEqual(['configs']);
  }, 60_000);
});

describe('retention with partial snapshots', () => {
  it('keeps the last complete snapshot for the source the partial ones lack', async () => {
    const dir = await project(
      'retention',
      (d) => `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
  flaky: { use: command, command: "test -f ${d}/down && exit 1; echo rows" }
retention: { last: 1 }
`,
    );
    const run = async (code: number) => {
      // One second apart: snapshot ids (and retention's order) have a resolution of one second.
      await new Promise((r) => setTimeout(r, 1100));
      const r = await runCli(['run', '--json'], { cwd: dir });
      expect(r.code, r.stderr).toBe(code);
      return r.json().snapshot as string;
    };
    const complete = await run(0);
    await fsp.writeFile(path.join(dir, 'down'), '');
    const partial1 = await run(1);
    const partial2 = await run(1);
    const listed = (await runCli(['list', '--json'], { cwd: dir })).json().map((s: { id: string }) => s.id);
    // last: 1 alone would keep only partial2, and with it no copy of flaky at all.
    expect(listed).toEqual([complete, partial2]);
    expect(listed).not.toContain(partial1);
  }, 60_000);
});

describe('priority and --parallel', () => {
  it('archives sources of higher priority first under the concurrency limit; --parallel beside --sequential is a usage error', async () => {
    const dir = await project(
      'priority',
      (d) => `backupRoot: ./repo
concurrency: 1
sources:
  low: { use: command, command: "echo low >> ${d}/order; echo low" }
  high: { use: command, command: "echo high >> ${d}/order; echo high", priority: 10 }
  mid: { use: command, command: "echo mid >> ${d}/order; echo mid", priority: 5 }
`,
    );
    const r = await runCli(['run', '--parallel', '1'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect((await fsp.readFile(path.join(dir, 'order'), 'utf8')).split('\n').filter(Boolean)).toEqual(['high', 'mid', 'low']);

    const both = await runCli(['run', '--parallel', '2', '--sequential'], { cwd: dir });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--parallel and --sequential');
    const bad = await runCli(['run', '--parallel', '0'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--parallel 0: expected a whole number from 1 to 64');
  }, 60_000);
});

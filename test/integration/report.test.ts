/**
 * `report` summarizes the run history of real runs: successes, a run whose replication failed, a
 * missed run (the lock stayed held past --wait), a restore test, inside and outside the window.
 * Earlier runs are dated with SUTAZAI_BACKUP_NOW, the CLI's clock for tests.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { expectSchema } from '../helpers/json-schemas.js';
import { runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';

const DAY = 24 * 3600_000;
let work: string;
let start: number;
const runs: Record<string, { snapshot: string; finishedAt: string; bytes: number }> = {};

const at = (ms: number) => ({ SUTAZAI_BACKUP_NOW: new Date(ms).toISOString() });
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { cwd: work, env });

async function run(name: string, args: string[], env: NodeJS.ProcessEnv, code: number) {
  const r = await cli(['run', ...args, '--json'], env);
  expect(r.code, r.stderr).toBe(code);
  const doc = r.json();
  runs[name] = { snapshot: doc.snapshot, finishedAt: doc.finishedAt, bytes: doc.artifacts.reduce((s: number, a: { bytes: number }) => s + a.bytes, 0) };
}

beforeAll(async () => {
  work = await tempDir();
  start = Date.now();
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n' });
  await writeRc(
    work,
    `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
  slow: { use: command, command: "touch ${work}/slow.started; sleep 8; echo slow" }
destinations:
  drive: { use: local, path: ./drive }
  flaky: { use: local, path: ./flaky }
profiles:
  quick: { sources: [configs] }
  slow: { sources: [slow] }
`,
  );
  await run('old', ['--profile', 'quick'], at(start - 10 * DAY), 0);
  await run('good', ['--profile', 'quick'], at(start - 3 * DAY), 0);
  // flaky's folder replaced by a file: replication there fails, the snapshot is still committed.
  await fsp.rename(path.join(work, 'flaky'), path.join(work, 'flaky.aside'));
  await fsp.writeFile(path.join(work, 'flaky'), 'not a folder');
  await run('replicationFailed', ['--profile', 'quick'], at(start - 2 * DAY), 1);
  await fsp.rm(path.join(work, 'flaky'));
  await fsp.rename(path.join(work, 'flaky.aside'), path.join(work, 'flaky'));
  // A missed run: the slow profile holds the lock past quick's --wait.
  const slow = startCli(['run', '--profile', 'slow', '--json'], { cwd: work });
  for (let i = 0; i < 400 && !(await fsp.access(path.join(work, 'slow.started')).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
  const missed = await cli(['run', '--profile', 'quick', '--wait', '1s', '--json']);
  expect(missed.code, missed.stderr).toBe(75);
  expect((await slow.result).code).toBe(0);
  const test = await cli(['restore-test', '--json']);
  expect(test.code, test.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('report', () => {
  it('--json: per profile runs, failures, missed runs, bytes stored, last success; per destination; restore tests', async () => {
    const r = await cli(['report', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json();
    expectSchema('report', doc);
    expect(doc.days).toBe(7);
    expect(doc.profiles).toEqual([
      {
        profile: 'quick',
        runs: 3,
        successes: 1,
        failures: 2,
        missed: 1,
        bytesStored: runs.good!.bytes + runs.replicationFailed!.bytes,
        lastSuccess: { at: runs.good!.finishedAt, snapshot: runs.good!.snapshot },
      },
      { profile: 'slow', runs: 1, successes: 1, failures: 0, missed: 0, bytesStored: expect.any(Number), lastSuccess: { at: expect.any(String), snapshot: expect.any(String) } },
    ]);
    expect(doc.destinations).toEqual([
      { destination: 'drive', replications: 3, ok: 3, failed: 0, lastOk: expect.any(String), lastFailure: null },
      {
        destination: 'flaky',
        replications: 3,
        ok: 2,
        failed: 1,
        lastOk: expect.any(String),
        lastFailure: { at: runs.replicationFailed!.finishedAt, error: expect.stringContaining('destinations.flaky') },
      },
    ]);
    expect(doc.restoreTests).toMatchObject({ runs: 1, successes: 1, failures: 0, last: { status: 'success', repository: 'backupRoot' } });
  });

  it('--days narrows the window (the last success is still the last one ever); the text names each part', async () => {
    const r = await cli(['report', '--days', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const quick = r.json().profiles.find((p: { profile: string }) => p.profile === 'quick');
    expect(quick).toMatchObject({ runs: 1, successes: 0, failures: 1, missed: 1, bytesStored: 0, lastSuccess: { snapshot: runs.good!.snapshot } });
    const wide = await cli(['report', '--days', '30']);
    expect(wide.code, wide.stderr).toBe(0);
    expect(wide.stdout).toMatch(/^profile quick: 4 run\(s\), 2 ok, 2 failed \(1 missed\), .* stored; last success /m);
    expect(wide.stdout).toMatch(/^destination flaky: 4 replication\(s\), 3 ok, 1 failed; last ok .*; last failure /m);
    expect(wide.stdout).toMatch(/^restore tests: 1, 1 ok, 0 failed; last success at /m);
  });

  it('--days that is not a whole number of days is a usage error (exit 2)', async () => {
    for (const days of ['0', '-3', '1.5', 'week']) {
      const r = await cli(['report', '--days', days, '--json']);
      expect(r.code, days).toBe(2);
      expectSchema('error', r.json());
    }
  });
});

/**
 * `recover --from DEST` after backupRoot is lost: the plan (what, from which snapshot, to where,
 * in which order) writes nothing; the recovery restores each source's newest snapshot from the
 * destination alone, configuration first, databases next, logs last, under --to DIR.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { expectSchema } from '../helpers/json-schemas.js';
import { logMessages, runCli, tempDir, writeRc } from '../helpers/cli.js';

let work: string;
const snapshots: Record<string, string> = {};
const cli = (args: string[]) => runCli(args, { cwd: work });

beforeAll(async () => {
  work = await tempDir();
  await writeTree(path.join(work, 'config'), { 'app.yml': 'port: 8080\n' });
  await writeTree(path.join(work, 'logs'), { 'app.log': 'started\n' });
  execFileSync('python3', ['-c', "import sqlite3;c=sqlite3.connect('agents.db');c.execute('create table agents(name)');c.execute(\"insert into agents values ('scout')\");c.commit()"], { cwd: work });
  // Sources listed out of recovery order on purpose.
  await writeRc(
    work,
    `backupRoot: ./repo
sources:
  applogs: { use: files, paths: [./logs] }
  agents: { use: sqlite, path: ./agents.db }
  never: { use: command, command: "echo never run" }
  configs: { use: files, paths: [./config] }
destinations:
  drive: { use: local, path: ./drive }
profiles:
  main: { sources: [agents, configs] }
  logs: { sources: [applogs] }
`,
  );
  for (const profile of ['main', 'logs', 'main']) {
    const r = await cli(['run', '--profile', profile, '--json']);
    expect(r.code, r.stderr).toBe(0);
    snapshots[profile] = r.json().snapshot;
  }
  // The disaster: backupRoot is gone, and the data with it.
  for (const gone of ['repo', 'config', 'logs', 'agents.db']) await fsp.rm(path.join(work, gone), { recursive: true });
}, 120_000);

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('recover', () => {
  it('--plan says what, from which snapshot, to where and in what order, and writes nothing', async () => {
    const r = await cli(['recover', '--from', 'drive', '--to', 'restored', '--plan', '--json']);
    // A source the destination does not hold cannot be recovered: exit 1, and the plan says so.
    expect(r.code, r.stderr).toBe(1);
    const plan = r.json();
    expectSchema('recover', plan);
    const to = path.join(work, 'restored');
    expect(plan.steps).toEqual([
      { order: 1, phase: 'configuration and files', source: 'configs', plugin: 'files', snapshot: snapshots.main, target: path.join(to, 'configs') },
      { order: 2, phase: 'databases', source: 'agents', plugin: 'sqlite', snapshot: snapshots.main, target: path.join(to, 'agents') },
      { order: 3, phase: 'logs and the rest', source: 'applogs', plugin: 'files', snapshot: snapshots.logs, target: path.join(to, 'applogs') },
      { order: 4, phase: 'logs and the rest', source: 'never', plugin: 'command', snapshot: null, target: null, note: expect.stringContaining('no snapshot at the destination') },
    ]);
    expect(plan).toMatchObject({ plan: true, restored: [], complete: false });
    expect(existsSync(to)).toBe(false);
    expect(existsSync(path.join(work, 'repo'))).toBe(false);
    const text = await cli(['recover', '--from', 'drive', '--plan']);
    expect(text.stdout).toMatch(/^ 1\. \[configuration and files\] configs \(files\): .* -> \(no target\)  # no target: give --to DIR$/m);
  });

  it('restores every source the destination holds, in that order, from the destination alone', async () => {
    const r = await cli(['recover', '--from', 'drive', '--to', 'restored', '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.json().restored).toEqual(['configs', 'agents', 'applogs']);
    const order = [...logMessages(r.stderr).matchAll(/^recover \d\/4: (\S+)/gm)].map((m) => m[1]);
    expect(order).toEqual(['configs', 'agents', 'applogs']);
    const to = path.join(work, 'restored');
    expect(await fsp.readFile(path.join(to, 'configs', work.slice(1), 'config/app.yml'), 'utf8')).toBe('port: 8080\n');
    expect(await fsp.readFile(path.join(to, 'applogs', work.slice(1), 'logs/app.log'), 'utf8')).toBe('started\n');
    const rows = execFileSync('python3', ['-c', "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select name from agents').fetchall())", path.join(to, 'agents', 'agents.db')]);
    expect(rows.toString().trim()).toBe("[('scout',)]");
    // A second recovery into the same folder refuses to overwrite without --force.
    const again = await cli(['recover', '--from', 'drive', '--to', 'restored']);
    expect(again.code).toBe(1);
    expect(logMessages(again.stderr)).toMatch(/restored.configs is not empty/);
  });

  it('needs --from, and --to unless --plan (usage errors, exit 2)', async () => {
    expect((await cli(['recover', '--to', 'x'])).code).toBe(2);
    const noTo = await cli(['recover', '--from', 'drive']);
    expect(noTo.code).toBe(2);
    expect(noTo.stderr).toContain('recover needs --to DIR');
  });
});

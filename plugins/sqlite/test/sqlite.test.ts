// The sqlite source through the built CLI, against real databases and real second processes: a
// missing file, a corrupt database, a writer that keeps its lock, and a WAL database written to
// while the run copies it.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { committedSnapshots, runCli, sourceProject, tempDir } from '../../../test/helpers/cli.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
let work: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  work = await tempDir('sutazai-sqlite-');
});

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** Starts a fixture process and resolves once it printed `line`. */
async function startFixture(script: string, args: string[], line: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(fixtures, script), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(line)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${script} exited early (${code})`)));
  });
  return child;
}

function waitForLine(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes(line) && resolve());
  });
}

/** A rollback-journal database of agents with an index on their names. */
function agentsDatabase(file: string, rows = 50): void {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = DELETE');
    db.exec('CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT NOT NULL); CREATE INDEX agents_name ON agents (name)');
    const insert = db.prepare('INSERT INTO agents (name) VALUES (?)');
    db.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run(`agent-${String(i).padStart(4, '0')}`);
    })();
  } finally {
    db.close();
  }
}

async function project(name: string, dbPath: string, extra = ''): Promise<string> {
  return sourceProject(path.join(work, name), 'agents', 'sqlite', `path: ${dbPath}${extra ? `\n${extra}` : ''}`);
}

describe('a missing database', () => {
  it('fails the run with an error naming the source and the path, and commits nothing', async () => {
    const dir = await project('missing', './data/agents.db');
    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code).toBe(1);
    const report = r.json();
    expect(report.status).toBe('failed');
    expect(report.snapshot).toBeNull();
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatchObject({ stage: 'collect', plugin: 'sources.agents', code: 'E_SOURCE' });
    expect(report.errors[0].message).toBe(`sources.agents: database ${path.join(dir, 'data', 'agents.db')} does not exist`);
    expect(await committedSnapshots(dir)).toEqual([]);
  });

  it('says a folder is not a database file', async () => {
    const dir = await project('folder', './data');
    await fsp.mkdir(path.join(dir, 'data'));
    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.json().errors[0].message).toBe(`sources.agents: database ${path.join(dir, 'data')} is not a file`);
  });
});

describe('a corrupt database', () => {
  it('fails integrity_check in the run\'s verification, and no snapshot is committed', async () => {
    const dir = await project('corrupt', './agents.db');
    const file = path.join(dir, 'agents.db');
    agentsDatabase(file);
    // Rewrite one key inside the index's b-tree page: the table still reads (50 rows), but the
    // index no longer matches it, which only integrity_check notices.
    const db = new Database(file, { readonly: true });
    const root = db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'agents_name'").pluck().get() as number;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const bytes = await fsp.readFile(file);
    const page = bytes.subarray((root - 1) * pageSize, root * pageSize);
    const at = page.indexOf('agent-0007');
    expect(at).toBeGreaterThan(0);
    page.write('agent-9997', at);
    await fsp.writeFile(file, bytes);
    const check = new Database(file, { readonly: true });
    expect(check.prepare('SELECT count(*) FROM agents').pluck().get()).toBe(50);
    check.close();

    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code).toBe(1);
    const report = r.json();
    expect(report.snapshot).toBeNull();
    expect(report.stages.verify.status).toBe('failed');
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatchObject({ stage: 'verify', code: 'E_VERIFY' });
    expect(report.errors[0].message).toContain('agents.sqlite.zst: integrity_check: row 8 missing from index agents_name');
    expect(await committedSnapshots(dir)).toEqual([]);
  });
});

describe('a writer holding the lock', () => {
  it('past busyTimeout: the run waits that long, then fails naming the source, the file and the option', async () => {
    const dir = await project('locked', './agents.db', 'busyTimeout: 1500');
    const file = path.join(dir, 'agents.db');
    agentsDatabase(file);
    // Holds the lock for the whole run.
    await startFixture('lock-holder.mjs', [file, '600000'], 'held');

    const t0 = Date.now();
    const r = await runCli(['run', '--json'], { cwd: dir });
    const waited = Date.now() - t0;
    expect(r.code).toBe(1);
    const report = r.json();
    expect(report.snapshot).toBeNull();
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatchObject({ plugin: 'sources.agents', code: 'E_SOURCE' });
    expect(report.errors[0].message).toBe(
      `sources.agents: ${file} stayed locked by another writer for longer than busyTimeout (1500 ms); raise sources.agents.busyTimeout or back up while the writer is idle`,
    );
    // It waited for the writer before giving up (a lower bound only: no speed is asserted).
    expect(waited).toBeGreaterThanOrEqual(1500);
    expect(await committedSnapshots(dir)).toEqual([]);
  });

  it('released within busyTimeout: the run waits for the commit and backs up the row written under the lock', async () => {
    const dir = await project('waits', './agents.db', 'busyTimeout: 60000');
    const file = path.join(dir, 'agents.db');
    agentsDatabase(file);
    const holder = await startFixture('lock-holder.mjs', [file, '2000'], 'held');
    const released = waitForLine(holder, 'released');

    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    await released;
    const restored = path.join(dir, 'restored');
    expect((await runCli(['restore', 'latest', '--to', restored], { cwd: dir })).code).toBe(0);
    const db = new Database(path.join(restored, 'agents', 'agents.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) FROM agents').pluck().get()).toBe(51);
      expect(db.prepare("SELECT count(*) FROM agents WHERE name = 'written under the lock'").pluck().get()).toBe(1);
    } finally {
      db.close();
    }
  });
});

describe('a WAL database with a concurrent writer', () => {
  interface Ledger {
    transfers: number;
    counted: number;
    total: number;
    opening: number;
    accounts: number;
    unbalanced: number;
  }

  function readLedger(file: string): Ledger {
    const db = new Database(file, { readonly: true });
    try {
      // One read transaction: the figures agree with each other.
      return db.transaction(() => ({
        transfers: db.prepare('SELECT count(*) FROM transfers').pluck().get() as number,
        counted: db.prepare("SELECT value FROM counters WHERE name = 'transfers'").pluck().get() as number,
        total: db.prepare('SELECT sum(balance) FROM accounts').pluck().get() as number,
        opening: db.prepare("SELECT value FROM counters WHERE name = 'opening'").pluck().get() as number,
        accounts: db.prepare('SELECT count(*) FROM accounts').pluck().get() as number,
        // Accounts whose balance is not the opening plus what came in minus what went out.
        unbalanced: db
          .prepare(
            `SELECT count(*) FROM accounts a WHERE a.balance != (SELECT value FROM counters WHERE name = 'opening')
               + coalesce((SELECT sum(amount) FROM transfers WHERE target = a.id), 0)
               - coalesce((SELECT sum(amount) FROM transfers WHERE source = a.id), 0)`,
          )
          .pluck()
          .get() as number,
      }))();
    } finally {
      db.close();
    }
  }

  it('copies a consistent state that holds every transaction committed before the run', async () => {
    const dir = await project('ledger', './ledger.db');
    const file = path.join(dir, 'ledger.db');
    await startFixture('ledger-writer.mjs', [file], 'ready');

    const before = readLedger(file);
    expect(before.transfers).toBeGreaterThanOrEqual(100);
    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const after = readLedger(file);

    const restored = path.join(dir, 'restored');
    const restore = await runCli(['restore', 'latest', '--to', restored], { cwd: dir });
    expect(restore.code, restore.stderr).toBe(0);
    const copyFile = path.join(restored, 'agents', 'ledger.db');
    const check = new Database(copyFile, { readonly: true });
    expect(check.prepare('PRAGMA integrity_check').pluck().all()).toEqual(['ok']);
    // A self-contained file: not in WAL mode, nothing left in a -wal beside it.
    expect(check.pragma('journal_mode', { simple: true })).toBe('delete');
    check.close();
    expect((await fsp.readdir(path.dirname(copyFile))).sort()).toEqual(['ledger.db']);

    const copy = readLedger(copyFile);
    expect(copy.accounts).toBe(50);
    expect(copy.total).toBe(copy.opening * copy.accounts);
    expect(copy.counted).toBe(copy.transfers);
    expect(copy.unbalanced).toBe(0);
    // Every transfer committed before the run, although checkpoints are off and they sit in the
    // -wal file; and the writer went on writing while the run copied.
    expect(copy.transfers).toBeGreaterThanOrEqual(before.transfers);
    expect(after.transfers).toBeGreaterThan(copy.transfers);

    // The restore test agrees: the row counts the manifest recorded are the copy's.
    const test = await runCli(['restore-test', 'latest', '--json'], { cwd: dir });
    expect(test.code, test.stderr).toBe(0);
    const checks = test.json().artifacts[0].checks as { name: string; ok: boolean; detail?: string }[];
    expect(checks.find((c) => c.name === 'rows transfers')).toEqual({ name: 'rows transfers', ok: true, detail: `${copy.transfers} rows` });
    expect(checks.every((c) => c.ok)).toBe(true);
  });
});

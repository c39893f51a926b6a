// The postgres source against a real PostgreSQL server on loopback, driven through the built CLI.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, writeRc, type CliResult } from '../../../test/helpers/cli.js';
import { freePort, startPostgres, type PostgresServer } from '../../../test/helpers/servers.js';
import { bytesWritten, fingerprint, seedSql, watchPrograms, type Fingerprint, type SeenProgram } from './helpers.js';

const DATABASES = ['shop', 'crm', 'données'];

let server: PostgresServer;
let password: string;
let work: string;
let rcDir: string;
const everything: string[] = [];

function rcYaml(backupRoot: string, source: string): string {
  return `backupRoot: ${JSON.stringify(backupRoot)}\nsources:\n  pg:\n${source
    .trim()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n`;
}

function baseSource(extra = ''): string {
  return `
use: postgres
url: postgres://postgres@127.0.0.1:${server.port}/postgres
password: \${PG_TEST_PASSWORD}
${extra}`;
}

async function cli(args: string[], cwd = rcDir): Promise<CliResult> {
  const result = await runCli(args, { cwd, env: { PG_TEST_PASSWORD: password } });
  everything.push(result.stdout, result.stderr);
  return result;
}

function expectNoPassword(text: string, where: string): void {
  expect(text.includes(password), `the password appears in ${where}`).toBe(false);
  expect(text.includes(encodeURIComponent(password)), `the encoded password appears in ${where}`).toBe(false);
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  }
  return out;
}

async function snapshotIds(backupRoot: string): Promise<string[]> {
  return fsp.readdir(path.join(backupRoot, 'snapshots')).catch(() => []);
}

async function scratchDatabases(): Promise<string> {
  return (await server.psql(`SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%restoretest%'`)).trim();
}

beforeAll(async () => {
  // Characters a careless URL or shell would mangle, and long enough to grep for.
  password = `Pg:Secret/${randomBytes(6).toString('hex')}@#`;
  server = await startPostgres({ password });
  work = await tempDir('sutazai-pg-');
  rcDir = path.join(work, 'rc');
  await fsp.mkdir(rcDir);
  for (const [i, db] of DATABASES.entries()) {
    await server.psql(`CREATE DATABASE "${db}"`);
    await server.psql(seedSql(db, [500, 120, 60][i]!), db);
  }
});

afterAll(async () => {
  await server?.stop();
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe('back up all databases, restore them', () => {
  let backupRoot: string;
  let before: Record<string, Fingerprint>;
  let snapshot: string;
  let programs: SeenProgram[];
  let manifest: { artifacts: { file: string; meta: Record<string, any> }[] };

  beforeAll(async () => {
    backupRoot = path.join(work, 'backups');
    await writeRc(
      rcDir,
      rcYaml(
        backupRoot,
        baseSource(`
databases: all
globals: true
checks:
  - { name: shop has orders, database: shop, sql: "SELECT count(*) > 0 FROM sales.orders" }`),
      ),
    );
    before = {};
    for (const db of DATABASES) before[db] = await fingerprint(server, db);
    const { child, result } = startCli(['run', '--json'], { cwd: rcDir, env: { PG_TEST_PASSWORD: password } });
    const watch = watchPrograms(child.pid!, ['pg_dump', 'pg_dumpall', 'pg_restore']);
    const run = await result;
    // Leave out the `--version` probes that pick the programs.
    programs = watch.stop().filter((p) => !p.args.includes('--version'));
    everything.push(run.stdout, run.stderr);
    expect(run.code, run.stderr).toBe(0);
    const report = run.json();
    expect(report.status).toBe('success');
    snapshot = report.snapshot;
    manifest = JSON.parse(await fsp.readFile(path.join(backupRoot, 'snapshots', snapshot, 'manifest.json'), 'utf8'));
  });

  it('stores one pg_dump archive per database, plus the globals, with stock-readable files', async () => {
    expect(manifest.artifacts.map((a) => a.file).sort()).toEqual(
      ['pg.crm.pgdump.zst', 'pg.donn_es.pgdump.zst', 'pg.globals.sql.zst', 'pg.postgres.pgdump.zst', 'pg.shop.pgdump.zst'].sort(),
    );
    const donnees = manifest.artifacts.find((a) => a.file === 'pg.donn_es.pgdump.zst')!;
    expect(donnees.meta.database).toBe('données');
    // zstd -d | pg_restore --list: no sutazai code needed to read it back.
    const file = path.join(backupRoot, 'snapshots', snapshot, 'pg.shop.pgdump.zst');
    const listing = execFileSync('sh', ['-c', `zstd -dc "$1" | "$2" --list`, 'sh', file, path.join(server.binDir, 'pg_restore')], { encoding: 'utf8' });
    expect(listing).toContain('TABLE DATA sales orders');
    expect(listing).toContain('BLOB');
  });

  it('records the server version, size, exact row counts and sequence values in the manifest', async () => {
    const shop = manifest.artifacts.find((a) => a.meta.database === 'shop')!.meta;
    expect(shop.server.version).toMatch(/^15\./);
    expect(shop.sizeBytes).toBeGreaterThan(1_000_000);
    expect(shop.tables).toEqual({
      'public.customers': { rows: 5 },
      'public.documents': { rows: 1 },
      'public.empty_table': { rows: 0 },
      'sales.orders': { rows: 450 },
    });
    expect(shop.sequences['public.invoice_no']).toBe(1014);
    expect(shop.sequences['sales.orders_id_seq']).toBe(500);
    expect(shop.sequences['public.never_used']).toBeNull();
    expect(shop.largeObjects).toBe(1);
  });

  it('never passes the password in pg_dump arguments: only in the child environment', () => {
    const dumps = programs.filter((p) => p.name === 'pg_dump');
    expect(dumps.length).toBeGreaterThanOrEqual(1);
    // One pg_dumpall run (a fork that has not exec'd yet shows the same command line: count those once).
    expect(new Set(programs.filter((p) => p.name === 'pg_dumpall').map((p) => p.args.join(' '))).size).toBe(1);
    for (const p of programs) {
      expectNoPassword(p.args.join(' '), `the arguments of ${p.name}`);
      // pg_restore --list (verify) reads the archive only: it gets no connection at all.
      if (p.name !== 'pg_restore') expect(p.env).toContain(`PGPASSWORD=${password}`);
      else expect(p.env.some((e) => e.startsWith('PGPASSWORD='))).toBe(false);
    }
  });

  it('passes verify (pg_restore --list) and restore-test, and drops its scratch databases', async () => {
    const verify = await cli(['verify', '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    const shopChecks = verify.json().snapshots[0].artifacts.find((a: { file: string }) => a.file === 'pg.shop.pgdump.zst').checks;
    expect(shopChecks.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['sha256', 'pg_restore --list', 'table data']));

    const test = await cli(['restore-test', '--json']);
    expect(test.code, test.stdout + test.stderr).toBe(0);
    const result = test.json();
    expect(result.ok).toBe(true);
    const shop = result.artifacts.find((a: { file: string }) => a.file === 'pg.shop.pgdump.zst');
    const names = shop.checks.map((c: { name: string }) => c.name);
    expect(names).toEqual(expect.arrayContaining(['pg_restore', 'rows sales.orders', 'rows public.customers', 'large objects', 'check shop has orders']));
    expect(names.some((n: string) => n.startsWith('sequence '))).toBe(true);
    expect(await scratchDatabases()).toBe('');
  });

  it('fails restore-test, naming the table or sequence, when a restored row count or sequence value differs from the manifest', async () => {
    const copy = path.join(work, 'tampered');
    await fsp.cp(backupRoot, copy, { recursive: true });
    const manifestFile = path.join(copy, 'snapshots', snapshot, 'manifest.json');
    const edited = JSON.parse(await fsp.readFile(manifestFile, 'utf8'));
    const crm = edited.artifacts.find((a: { file: string }) => a.file === 'pg.crm.pgdump.zst').meta;
    crm.tables['sales.orders'].rows += 1;
    const [sequence, value] = Object.entries(crm.sequences as Record<string, number>).find(([, v]) => typeof v === 'number')!;
    crm.sequences[sequence] = value + 5;
    await fsp.writeFile(manifestFile, JSON.stringify(edited, null, 2));
    const dir = path.join(work, 'rc-tampered');
    await fsp.mkdir(dir);
    await writeRc(dir, rcYaml(copy, baseSource('databases: all\nglobals: true')));

    const test = await cli(['restore-test'], dir);
    expect(test.code).toBe(1);
    expect(test.stdout).toMatch(/FAILED .*pg\.crm\.pgdump\.zst/);
    expect(test.stdout).toContain('table sales.orders: 108 rows restored, the manifest says 109');
    expect(test.stdout).toContain(`sequence ${sequence}: restored at ${value}, the manifest says ${value + 5}`);
    expect(test.stdout).not.toMatch(/FAILED .*pg\.shop\.pgdump\.zst/);
    expect(await scratchDatabases()).toBe('');
  });

  it('fails restore-test naming a configured check that does not return true', async () => {
    const dir = path.join(work, 'rc-check');
    await fsp.mkdir(dir);
    await writeRc(dir, rcYaml(backupRoot, baseSource('databases: all\nchecks:\n  - { name: a thousand customers, database: crm, sql: "SELECT count(*) = 1000 FROM customers" }')));
    const test = await cli(['restore-test'], dir);
    expect(test.code).toBe(1);
    expect(test.stdout).toContain('FAILED check a thousand customers: returned false, expected true');
  });

  it('restores every database --into the server after they were dropped, and one under a new name with --database', async () => {
    for (const db of DATABASES) await server.psql(`DROP DATABASE "${db}" WITH (FORCE)`);
    const serverUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${server.port}`;
    const all = await cli(['restore', 'latest', '--source', 'pg', '--into', serverUrl, '--json']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.json().restored.map((r: { file: string }) => r.file).sort()).toEqual(
      ['pg.crm.pgdump.zst', 'pg.donn_es.pgdump.zst', 'pg.postgres.pgdump.zst', 'pg.shop.pgdump.zst'],
    );
    for (const db of DATABASES) expect(await fingerprint(server, db), db).toEqual(before[db]);

    const copy = await cli(['restore', 'latest', '--source', 'pg', '--database', 'shop', '--into', `${serverUrl}/shop_copy`]);
    expect(copy.code, copy.stderr).toBe(0);
    expect(await fingerprint(server, 'shop_copy')).toEqual(before.shop);

    // A non-empty database is refused without --clean, and left as it was.
    await server.psql('INSERT INTO customers (name) VALUES ($$added after the restore$$)', 'shop_copy');
    const changed = await fingerprint(server, 'shop_copy');
    const refused = await cli(['restore', 'latest', '--source', 'pg', '--database', 'shop', '--into', `${serverUrl}/shop_copy`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('database shop_copy on postgres@127.0.0.1');
    expect(refused.stderr).toContain('is not empty');
    expect(await fingerprint(server, 'shop_copy')).toEqual(changed);

    const clean = await cli(['restore', 'latest', '--source', 'pg', '--database', 'shop', '--into', `${serverUrl}/shop_copy`, '--clean']);
    expect(clean.code, clean.stderr).toBe(0);
    expect(await fingerprint(server, 'shop_copy')).toEqual(before.shop);

    // A URL naming a database needs --database when the source has several.
    const ambiguous = await cli(['restore', 'latest', '--source', 'pg', '--into', `${serverUrl}/somewhere`]);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('pick one with --database');
  });

  it('also works with the tar format, and restores with parallel jobs from a scratch file', async () => {
    const tarDir = path.join(work, 'rc-tar');
    await fsp.mkdir(tarDir);
    await writeRc(tarDir, rcYaml(path.join(work, 'backups-tar'), baseSource('databases: [shop]\nformat: tar')));
    for (const args of [['run'], ['verify'], ['restore-test']]) {
      const r = await cli(args, tarDir);
      expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`).toBe(0);
    }

    const jobsDir = path.join(work, 'rc-jobs');
    await fsp.mkdir(jobsDir);
    await writeRc(jobsDir, rcYaml(path.join(work, 'backups-jobs'), baseSource('databases: [crm]\njobs: 2')));
    expect((await cli(['run'], jobsDir)).code).toBe(0);
    const serverUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${server.port}`;
    const restored = await cli(['restore', 'latest', '--source', 'pg', '--into', `${serverUrl}/crm_parallel`], jobsDir);
    expect(restored.code, restored.stderr).toBe(0);
    expect(await fingerprint(server, 'crm_parallel')).toEqual(before.crm);
    const test = await cli(['restore-test'], jobsDir);
    expect(test.code, test.stdout).toBe(0);
  });

  it('leaves the password in no log, report, manifest or history', async () => {
    for (const [i, text] of everything.entries()) expectNoPassword(text, `CLI output #${i}`);
    for (const root of [backupRoot, path.join(work, 'backups-tar'), path.join(work, 'backups-jobs')]) {
      for (const file of await filesUnder(root)) {
        if (file.endsWith('.json') || file.endsWith('.jsonl')) expectNoPassword(await fsp.readFile(file, 'utf8'), file);
      }
    }
  });
});

describe('failures: exit 1 naming the source, no snapshot committed', () => {
  async function failingRun(name: string, source: string): Promise<CliResult> {
    const dir = path.join(work, `fail-${name}`);
    await fsp.mkdir(dir);
    const backupRoot = path.join(dir, 'backups');
    await writeRc(dir, rcYaml(backupRoot, source));
    const run = await cli(['run', '--json'], dir);
    expect(run.code, run.stderr).toBe(1);
    const report = run.json();
    expect(report.status).toBe('failed');
    expect(report.snapshot).toBeNull();
    expect(report.errors[0].plugin).toBe('sources.pg');
    expect(await snapshotIds(backupRoot)).toEqual([]);
    expectNoPassword(run.stdout + run.stderr, `the ${name} run`);
    return run;
  }

  it('wrong password', async () => {
    const run = await failingRun(
      'password',
      `use: postgres\nurl: postgres://postgres:${encodeURIComponent('not-' + password)}@127.0.0.1:${server.port}/postgres\ndatabases: [shop]`,
    );
    expect(run.json().errors[0].message).toContain('password authentication failed for user "postgres"');
  });

  it('unreachable server', async () => {
    const port = await freePort();
    const run = await failingRun('unreachable', `use: postgres\nurl: postgres://postgres@127.0.0.1:${port}/postgres\npassword: \${PG_TEST_PASSWORD}\ndatabases: [shop]`);
    expect(run.json().errors[0].message).toContain(`cannot connect to postgres@127.0.0.1:${port}/postgres`);
  });

  it('a database that does not exist', async () => {
    const run = await failingRun('missing', baseSource('databases: [shop, nope]'));
    expect(run.json().errors[0].message).toContain('database "nope" does not exist');
  });

  it('pg_dump killed mid-stream', async () => {
    await server.psql(`CREATE DATABASE bulk`);
    // Enough rows that pg_dump is still writing when the test kills it.
    await server.psql(`CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS filler FROM generate_series(1, 150000) g`, 'bulk');
    const dir = path.join(work, 'fail-killed');
    await fsp.mkdir(dir);
    const backupRoot = path.join(dir, 'backups');
    await writeRc(dir, rcYaml(backupRoot, baseSource('databases: [bulk]')));
    const { child, result } = startCli(['run', '--json'], { cwd: dir, env: { PG_TEST_PASSWORD: password } });
    let killedAfter: number | undefined;
    const watch = watchPrograms(child.pid!, ['pg_dump'], (p) => {
      if (p.args.includes('--version')) return;
      const poll = setInterval(() => {
        const written = bytesWritten(p.pid);
        if (written === undefined) return clearInterval(poll);
        if (written > 0) {
          clearInterval(poll);
          killedAfter = written;
          process.kill(p.pid, 'SIGKILL');
        }
      }, 1);
    });
    const run = await result;
    watch.stop();
    everything.push(run.stdout, run.stderr);
    expect(killedAfter, 'pg_dump was seen writing and killed').toBeGreaterThan(0);
    expect(run.code, run.stderr).toBe(1);
    const report = run.json();
    expect(report.snapshot).toBeNull();
    expect(report.errors[0].plugin).toBe('sources.pg');
    expect(report.errors[0].message).toContain('pg_dump of database "bulk" failed: pg_dump was killed by SIGKILL');
    expect(await snapshotIds(backupRoot)).toEqual([]);
    expect(await filesUnder(path.join(backupRoot, 'staging'))).toEqual([]);
  });
});

/**
 * The grafana source through the real command line, on a data folder and a configuration folder
 * laid out as Grafana's (grafana.db with Grafana's dashboard, data_source and user tables,
 * grafana.ini, provisioning/). No Grafana server runs here (it is not a Debian package): the
 * database is made by the test, and written to while it is backed up.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceStreamChecks } from '@sutazai/backup-testkit';
import { runCli, sourceProject, tempDir, writeRc } from '../../../test/helpers/cli.js';
import { iniValue } from '../src/index.js';

const SECRET_KEY = 'Gk9-secret-key-4d1f';
let work: string;

async function grafanaHome(name: string, dashboards: { uid: string; title: string; data: string }[], ini = `[database]\ntype = sqlite3\n\n[security]\nsecret_key = ${SECRET_KEY}\n`) {
  const root = path.join(work, name);
  const dataDir = path.join(root, 'var-lib-grafana');
  const configDir = path.join(root, 'etc-grafana');
  await fsp.mkdir(dataDir, { recursive: true });
  await fsp.mkdir(path.join(configDir, 'provisioning', 'datasources'), { recursive: true });
  await fsp.writeFile(path.join(configDir, 'grafana.ini'), ini);
  await fsp.writeFile(path.join(configDir, 'provisioning', 'datasources', 'prometheus.yaml'), 'apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n    url: http://127.0.0.1:9090\n');
  const db = new Database(path.join(dataDir, 'grafana.db'));
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE dashboard (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, slug TEXT NOT NULL, title TEXT NOT NULL, data TEXT NOT NULL, org_id INTEGER NOT NULL, created DATETIME NOT NULL, updated DATETIME NOT NULL, uid TEXT);
    CREATE TABLE data_source (id INTEGER PRIMARY KEY AUTOINCREMENT, org_id INTEGER NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL, url TEXT NOT NULL, secure_json_data TEXT);
    CREATE TABLE user (id INTEGER PRIMARY KEY AUTOINCREMENT, login TEXT NOT NULL, email TEXT NOT NULL, password TEXT);
  `);
  const insert = db.prepare("INSERT INTO dashboard (version, slug, title, data, org_id, created, updated, uid) VALUES (1, ?, ?, ?, 1, datetime('now'), datetime('now'), ?)");
  for (const d of dashboards) insert.run(d.title.toLowerCase().replace(/\W+/g, '-'), d.title, d.data, d.uid);
  db.prepare("INSERT INTO data_source (org_id, version, type, name, url, secure_json_data) VALUES (1, 1, 'prometheus', 'Prometheus', 'http://127.0.0.1:9090', '{\"basicAuthPassword\":\"encrypted-with-secret-key\"}')").run();
  db.prepare("INSERT INTO user (login, email, password) VALUES ('admin', 'admin@localhost', 'hash')").run();
  db.close();
  return { root, dataDir, configDir };
}

const dashboard = (uid: string, title: string) => ({ uid, title, data: JSON.stringify({ uid, title, panels: [{ type: 'timeseries', targets: [{ expr: 'up' }] }] }) });

beforeAll(async () => {
  work = await tempDir('sutazai-grafana-');
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

function project(home: { root: string; dataDir: string; configDir: string }, extra = ''): Promise<string> {
  return sourceProject(path.join(home.root, 'project'), 'grafana', 'grafana', `dataDir: ${JSON.stringify(home.dataDir)}\nconfigDir: ${JSON.stringify(home.configDir)}\n${extra}`);
}

describe('grafana source', () => {
  it('backs up the database while it is written and the configuration; restores both; the restore test checks tables and dashboards', async () => {
    const home = await grafanaHome('roundtrip', [dashboard('node-exp', 'Node Exporter'), dashboard('agents', 'Agents ü')]);
    const dir = await project(home);
    // A writer holding the database open in WAL mode, as a running Grafana does.
    const writer = new Database(path.join(home.dataDir, 'grafana.db'));
    writer.prepare("UPDATE dashboard SET version = 2 WHERE uid = 'agents'").run();
    try {
      const run = await runCli(['run', '--json'], { cwd: dir });
      expect(run.code, run.stderr).toBe(0);
      expect(run.json().artifacts.map((a: { file: string }) => a.file).sort()).toEqual(['grafana.config.tar.zst', 'grafana.db.sqlite.zst']);
      expect(run.stdout + run.stderr).not.toContain(SECRET_KEY);
    } finally {
      writer.close();
    }

    const out = path.join(dir, 'out');
    expect((await runCli(['restore', 'latest', '--to', out], { cwd: dir })).code).toBe(0);
    const restored = new Database(path.join(out, 'grafana', 'grafana.db'), { readonly: true });
    try {
      expect(restored.prepare('SELECT uid, version FROM dashboard ORDER BY uid').all()).toEqual([
        { uid: 'agents', version: 2 },
        { uid: 'node-exp', version: 1 },
      ]);
    } finally {
      restored.close();
    }
    const ini = await fsp.readFile(path.join(out, 'grafana', home.configDir, 'grafana.ini'), 'utf8');
    expect(iniValue(ini, 'security', 'secret_key')).toBe(SECRET_KEY);

    const test = await runCli(['restore-test', '--json'], { cwd: dir });
    expect(test.code, test.stdout + test.stderr).toBe(0);
    const checks = test.json().artifacts.flatMap((a: { checks: { name: string; ok: boolean; detail?: string }[] }) => a.checks);
    expect(checks).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'integrity_check', ok: true }),
        expect.objectContaining({ name: 'row counts', ok: true }),
        expect.objectContaining({ name: 'dashboards', ok: true, detail: '2 parse' }),
        expect.objectContaining({ name: 'grafana.ini', ok: true }),
      ]),
    );
  });

  it('the restore test names a dashboard whose JSON is damaged, and a table whose rows differ', async () => {
    const home = await grafanaHome('damaged', [dashboard('good', 'Good'), { uid: 'cut', title: 'Cut short', data: '{"uid":"cut","panels":[{"type":' }]);
    const dir = await project(home);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    const snapshots = path.join(dir, 'backups', 'snapshots');
    const [id] = await fsp.readdir(snapshots);
    const file = path.join(snapshots, id!, 'manifest.json');
    const manifest = JSON.parse(await fsp.readFile(file, 'utf8'));
    manifest.artifacts.find((a: { file: string }) => a.file === 'grafana.db.sqlite.zst').meta.tables.user = 2;
    await fsp.writeFile(file, JSON.stringify(manifest));
    const test = await runCli(['restore-test'], { cwd: dir });
    expect(test.code).toBe(1);
    expect(test.stdout).toContain('dashboard cut ("Cut short"): its JSON does not parse');
    expect(test.stdout).toContain('table user: 1 rows, the manifest says 2');
  });

  it('says what to do when the database is not SQLite or not there; configuration only with database: false', async () => {
    const pg = await grafanaHome('on-postgres', [], '[database]\ntype = postgres\nhost = 127.0.0.1:5432\n');
    const dir = await project(pg);
    const r1 = await runCli(['run'], { cwd: dir });
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/sources\.grafana: grafana\.ini says its database is postgres \(\[database\] type\): back it up with that database's source/);

    const configOnly = path.join(pg.root, 'config-only');
    await fsp.mkdir(configOnly);
    await writeRc(configOnly, `backupRoot: ./backups\nsources:\n  grafana: { use: grafana, database: false, configDir: ${JSON.stringify(pg.configDir)} }\n`);
    const r2 = await runCli(['run', '--json'], { cwd: configOnly });
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.json().artifacts.map((a: { file: string }) => a.file)).toEqual(['grafana.config.tar.zst']);

    const empty = path.join(work, 'nothing-here');
    await fsp.mkdir(empty);
    await writeRc(empty, `backupRoot: ./backups\nsources:\n  grafana: { use: grafana, dataDir: ./no-such-folder, configDir: false }\n`);
    const r3 = await runCli(['run'], { cwd: empty });
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/Grafana's database \/.*\/no-such-folder\/grafana\.db does not exist/);
  });
});

describe('grafana source, a dashboard and a provisioning file of 0 B to 1 MiB (testkit)', () => {
  const checks = sourceStreamChecks({
    use: 'grafana',
    runs: 13,
    fixture: async ({ size, data, run }) => {
      const home = await grafanaHome(`stream-${size}-${run}`, [{ uid: 'payload', title: 'Payload', data: JSON.stringify({ uid: 'payload', bytes: data.toString('base64') }) }]);
      await fsp.writeFile(path.join(home.configDir, 'provisioning', 'payload.bin'), data);
      return {
        options: { dataDir: home.dataDir, configDir: home.configDir },
        expected: { [path.join(home.configDir.slice(1), 'provisioning', 'payload.bin')]: data },
        check(restored) {
          const db = new Database(path.join(restored, 'grafana.db'), { readonly: true });
          try {
            const json = JSON.parse(db.prepare("SELECT data FROM dashboard WHERE uid = 'payload'").pluck().get() as string);
            expect(Buffer.from(json.bytes, 'base64').equals(data)).toBe(true);
          } finally {
            db.close();
          }
        },
      };
    },
  });
  // Many backups beside a busy CPU: more than the default time on a loaded machine.
  for (const check of checks) it(check.name, check.run, 600_000);
});

import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { BackupError, defineSource, expandHome, joinInside, z, type ArtifactSpec } from '@sutazai/backup-core';
import { integrityCheck, onlineCopy, openDatabase, tableCounts, type Database, type TableCounts } from '@sutazai/backup-plugin-sqlite';

export const grafanaOptions = z
  .object({
    /** Grafana's data folder (`[paths] data`), where grafana.db is by default. */
    dataDir: z.string().min(1).default('/var/lib/grafana'),
    /** Grafana's SQLite database; default: grafana.ini's `[database] path`, else `<dataDir>/grafana.db`. `false`: leave it out (a MySQL or PostgreSQL database is backed up with its own source). */
    database: z.union([z.string().min(1), z.literal(false)]).optional(),
    /** Grafana's configuration folder (grafana.ini, provisioning/); `false`: leave it out. */
    configDir: z.union([z.string().min(1), z.literal(false)]).default('/etc/grafana'),
    /** How long to wait for a lock held by Grafana, in milliseconds. */
    busyTimeout: z.number().int().min(0).default(10_000),
  })
  .strict();

export type GrafanaOptions = z.input<typeof grafanaOptions>;

/** `[section] key = value` of an ini file (Grafana's format: `;` and `#` comments). */
export function iniValue(text: string, section: string, key: string): string | undefined {
  let current = '';
  let value: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith(';') || line.startsWith('#')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      current = header[1]!.trim();
      continue;
    }
    const eq = line.indexOf('=');
    if (current === section && eq > 0 && line.slice(0, eq).trim() === key) {
      value = line.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    }
  }
  return value;
}

/** Dashboards whose JSON does not parse, or names another uid: what a restore would lose. */
export function brokenDashboards(db: Database): string[] {
  const exists = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'dashboard'").get();
  if (!exists) return [];
  const broken: string[] = [];
  for (const row of db.prepare('SELECT uid, title, data FROM dashboard').iterate() as Iterable<{ uid: string; title: string; data: string | Buffer }>) {
    try {
      const json = JSON.parse(String(row.data)) as { uid?: unknown };
      if (json.uid !== undefined && json.uid !== row.uid) broken.push(`${row.uid} ("${row.title}"): its JSON says uid ${String(json.uid)}`);
    } catch {
      broken.push(`${row.uid} ("${row.title}"): its JSON does not parse`);
    }
  }
  return broken;
}

/**
 * `use: grafana` — Grafana's SQLite database (dashboards, folders, data sources, users, alert
 * rules) through SQLite's online backup, safe while Grafana runs, and its configuration folder
 * (grafana.ini with the `secret_key` that encrypts data source passwords, provisioning/). The
 * restore test runs integrity_check, compares every table's row count, and parses every dashboard.
 */
export default defineSource({
  name: 'grafana',
  options: grafanaOptions,
  reads(options, { configDir }) {
    // The configuration folder is archived whole; the database is one file.
    return options.configDir === false ? [] : [{ key: 'configDir', paths: [path.resolve(configDir, expandHome(options.configDir))] }];
  },
  async collect(ctx, options) {
    const dataDir = path.resolve(ctx.configDir, expandHome(options.dataDir));
    const configDir = options.configDir === false ? undefined : path.resolve(ctx.configDir, expandHome(options.configDir));
    const ini = configDir ? await fsp.readFile(path.join(configDir, 'grafana.ini'), 'utf8').catch(() => undefined) : undefined;
    const fail = (message: string): never => {
      throw new BackupError('E_SOURCE', `${ctx.key}: ${message}`, { plugin: ctx.key });
    };
    if (configDir && !(await fsp.stat(configDir).then((s) => s.isDirectory(), () => false))) {
      fail(`configDir ${configDir} is not a folder (set configDir, or configDir: false to leave the configuration out)`);
    }

    const specs: ArtifactSpec[] = [];
    if (options.database !== false) {
      const type = ini ? iniValue(ini, 'database', 'type') : undefined;
      if (options.database === undefined && type && type !== 'sqlite3') {
        fail(`grafana.ini says its database is ${type} ([database] type): back it up with that database's source (e.g. use: postgres), and set database: false here`);
      }
      const configured = ini ? iniValue(ini, 'database', 'path') : undefined;
      const file = options.database
        ? path.resolve(ctx.configDir, expandHome(options.database))
        : path.resolve(dataDir, configured ?? 'grafana.db');
      if (!(await fsp.stat(file).then((s) => s.isFile(), () => false))) {
        fail(`Grafana's database ${file} does not exist (set dataDir or database, or database: false)`);
      }
      specs.push({
        type: 'file',
        name: `${ctx.instance}.db`,
        ext: 'sqlite',
        filename: 'grafana.db',
        meta: { kind: 'database', path: file },
        async open({ tempDir }) {
          const copy = path.join(tempDir, 'grafana.db');
          await onlineCopy(file, copy, { busyTimeout: options.busyTimeout, what: ctx.key });
          const db = openDatabase(copy, { readonly: true, fileMustExist: true }, ctx.key);
          let meta: Record<string, unknown>;
          try {
            const tables = tableCounts(db);
            meta = { tables, dashboards: tables.dashboard ?? 0, dataSources: tables.data_source ?? 0, users: tables.user ?? 0 };
          } finally {
            db.close();
          }
          return { stream: createReadStream(copy, { highWaterMark: 1024 * 1024 }), done: Promise.resolve(meta) };
        },
      });
    }
    if (configDir) {
      specs.push({ type: 'tree', name: `${ctx.instance}.config`, paths: [configDir], meta: { kind: 'config', configDir } });
    }
    if (specs.length === 0) fail('database: false and configDir: false leave nothing to back up');
    return specs;
  },
  async restoreTest(ctx) {
    const meta = ctx.artifact.meta as { kind?: string; tables?: TableCounts; configDir?: string };
    if (meta.kind === 'config' && meta.configDir) {
      const ini = joinInside(ctx.restoredPath, path.join(meta.configDir, 'grafana.ini'), `${ctx.manifest.id}/${ctx.artifact.file}`);
      const found = await fsp.stat(ini).then((s) => s.isFile(), () => false);
      ctx.addCheck('grafana.ini', found, found ? undefined : `${meta.configDir}/grafana.ini is not in the restored configuration`);
      return;
    }
    if (meta.kind !== 'database') return;
    const result = integrityCheck(ctx.restoredPath, ctx.plugin.key);
    ctx.addCheck('integrity_check', result === 'ok', result === 'ok' ? undefined : result);
    const db = openDatabase(ctx.restoredPath, { readonly: true, fileMustExist: true }, ctx.plugin.key);
    try {
      const actual = tableCounts(db);
      const expected = Object.entries(meta.tables ?? {});
      const mismatches = expected.filter(([table, rows]) => actual[table] !== rows).map(([table, rows]) => `table ${table}: ${actual[table] ?? 'missing'} rows, the manifest says ${rows}`);
      ctx.addCheck('row counts', mismatches.length === 0, mismatches.length ? mismatches.join('; ') : `${expected.length} tables`);
      const broken = brokenDashboards(db);
      const dashboards = actual.dashboard ?? 0;
      ctx.addCheck('dashboards', broken.length === 0, broken.length ? `dashboard ${broken.join('; dashboard ')}` : `${dashboards} parse`);
    } finally {
      db.close();
    }
  },
});

import { BackupError, defineSource, type ArtifactSpec } from '@sutazai/backup-core';
import { databaseExists, listDatabases, majorOf, serverVersion } from './catalog.js';
import { connect, describe } from './connection.js';
import { dumpDatabase, dumpGlobals, type DumpContext } from './dump.js';
import { postgresOptions, sourceConnection } from './options.js';
import { restoreInto, restoreTest, verifyArtifact } from './restore.js';
import { findTool, probeTools } from './tools.js';

export { postgresOptions, type PostgresOptions } from './options.js';
export type { DatabaseMeta, GlobalsMeta, TableRows } from './catalog.js';

/** A database name as it may appear in a file name: `<source>.<db>.pgdump.zst`. */
function fileStem(database: string): string {
  return database.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\./, '_');
}

/**
 * `use: postgres` — one pg_dump archive per database, streamed through the archive pipeline, with
 * the server version, sizes, row counts and sequence values (read in pg_dump's own snapshot) in
 * the manifest; verified with pg_restore --list; restored with pg_restore --into a server; restore
 * tests in a scratch database.
 */
export default defineSource({
  name: 'postgres',
  options: postgresOptions,
  async collect(ctx, options) {
    const conn = sourceConnection(options, ctx.key);
    ctx.secrets.add(conn.password);
    if (conn.password === undefined) ctx.secrets.add(process.env.PGPASSWORD);
    // While we connect and read the catalog (pg_restore: for the run's verification).
    probeTools('pg_dump', options);
    probeTools('pg_restore', options);
    if (options.globals) probeTools('pg_dumpall', options);
    const maintenanceDb = conn.database ?? 'postgres';
    const client = await connect(conn, maintenanceDb, ctx.key, options.connectTimeout * 1000);
    let databases: string[];
    let server: { version: string; versionNum: number };
    let superuser: boolean;
    try {
      server = await serverVersion(client);
      const available = await listDatabases(client);
      if (options.databases === 'all') {
        databases = available.filter((d) => !options.excludeDatabases.includes(d));
      } else {
        databases = options.databases ?? [conn.database!];
        for (const db of databases) {
          if (available.includes(db)) continue;
          const exists = await databaseExists(client, db);
          throw new BackupError(
            'E_SOURCE',
            `${ctx.key}: database "${db}" ${exists ? 'is a template or does not accept connections' : 'does not exist'} on ${describe(conn, '')} (its databases: ${available.join(', ')})`,
            { plugin: ctx.key },
          );
        }
      }
      const { rows } = await client.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
      superuser = rows[0]?.rolsuper ?? false;
    } catch (err) {
      if (err instanceof BackupError) throw err;
      throw new BackupError('E_SOURCE', ctx.secrets.redact(`${ctx.key}: reading the catalog of ${describe(conn, maintenanceDb)} failed: ${(err as Error).message}`), { cause: err });
    } finally {
      await client.end().catch(() => undefined);
    }
    if (databases.length === 0 && !options.globals) {
      throw new BackupError('E_SOURCE', `${ctx.key}: no database to back up on ${describe(conn, '')}`, { plugin: ctx.key });
    }

    const major = majorOf(server.versionNum);
    const want = { minMajor: major, prefer: major, why: `the server is ${server.version}` };
    const pgDump = databases.length ? await findTool('pg_dump', options, want, ctx.key) : undefined;
    const pgDumpall = options.globals ? await findTool('pg_dumpall', options, want, ctx.key) : undefined;
    ctx.logger.debug(`server ${server.version}; ${pgDump ? `${pgDump.path} ${pgDump.version}` : ''}${pgDumpall ? ` ${pgDumpall.path}` : ''}`);
    if (options.globals && !superuser) {
      ctx.logger.warn(`${ctx.key}: ${conn.user} is not a superuser: roles are backed up without their passwords (--no-role-passwords)`);
    }

    const stems = new Map<string, string>();
    const specs: ArtifactSpec[] = [];
    const dumpCtx = (signal: AbortSignal, logger: DumpContext['logger']): DumpContext => ({
      key: ctx.key,
      conn,
      options,
      server,
      secrets: ctx.secrets,
      logger,
      signal,
    });
    if (pgDumpall) {
      stems.set('globals', '(roles and tablespaces)');
      specs.push({
        type: 'file',
        name: `${ctx.instance}.globals`,
        ext: 'sql',
        filename: 'globals.sql',
        meta: { kind: 'globals' },
        open: async ({ signal, logger }) => dumpGlobals(dumpCtx(signal, logger), pgDumpall, maintenanceDb, superuser),
      });
    }
    for (const database of databases) {
      const stem = fileStem(database);
      const clash = stems.get(stem);
      if (clash !== undefined) {
        throw new BackupError('E_SOURCE', `${ctx.key}: databases "${clash}" and "${database}" would both be stored as ${ctx.instance}.${stem}: leave one out (excludeDatabases) or back it up in a source of its own`, {
          plugin: ctx.key,
        });
      }
      stems.set(stem, database);
      specs.push({
        type: 'file',
        name: `${ctx.instance}.${stem}`,
        ext: 'pgdump',
        filename: `${stem}.pgdump`,
        meta: { kind: 'database', database },
        open: ({ signal, logger }) => dumpDatabase(dumpCtx(signal, logger), database, pgDump!),
      });
    }
    return specs;
  },
  verify: verifyArtifact,
  restoreInto,
  restoreTest,
});

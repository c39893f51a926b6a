import { BackupError, isBackupError, startChild, type ArtifactStream, type Child, type Logger, type SecretRegistry } from '@sutazai/backup-core';
import { databaseInfo, countRows, largeObjectCount, sequenceValues, type DatabaseMeta, type GlobalsMeta } from './catalog.js';
import { childEnv, connect, type Connection } from './connection.js';
import type { PostgresOptions } from './options.js';
import type { Tool } from './tools.js';

export interface DumpContext {
  /** `sources.app-db` */
  key: string;
  conn: Connection;
  options: PostgresOptions;
  server: { version: string; versionNum: number };
  secrets: SecretRegistry;
  logger: Logger;
  signal: AbortSignal;
}

/**
 * Streams `pg_dump` of one database. The dump and the manifest's row counts read the same data:
 * this connection exports its snapshot, pg_dump imports it (`--snapshot`), and the counts are
 * taken inside the exporting transaction, which stays open until pg_dump has finished.
 */
export async function dumpDatabase(ctx: DumpContext, database: string, tool: Tool): Promise<ArtifactStream> {
  const { options } = ctx;
  const what = `${ctx.key}: pg_dump of database "${database}"`;
  const client = await connect(ctx.conn, database, ctx.key, options.connectTimeout * 1000);
  let child: Child;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    // The counts run beside pg_dump: one core for them, so they do not starve the dump.
    await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const { rows } = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
    const args = [
      `--format=${options.format}`,
      ...(options.format === 'custom' ? [`--compress=${options.dumpCompression}`] : []),
      '--no-password',
      `--snapshot=${rows[0]!.snapshot}`,
      ...(options.lockWaitTimeout ? [`--lock-wait-timeout=${options.lockWaitTimeout.replace(/\s+/g, '')}`] : []),
    ];
    child = startChild(tool, args, { env: childEnv(ctx.conn, database), what, code: 'E_SOURCE', secrets: ctx.secrets, logger: ctx.logger, signal: ctx.signal });
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }

  const meta = (async () => {
    const info = await databaseInfo(client);
    const tables = await countRows(client, options.exactCountMaxBytes);
    const sequences = await sequenceValues(client);
    const largeObjects = await largeObjectCount(client);
    return { ...info, tables, sequences, largeObjects };
  })();
  const done = Promise.all([child.exited, meta])
    .then(([, m]): DatabaseMeta => ({
      kind: 'database',
      database,
      format: options.format,
      server: ctx.server,
      pgDump: { version: tool.version, major: tool.major },
      ...m,
    }))
    .catch((err: unknown) => {
      child.process.kill('SIGTERM');
      if (isBackupError(err)) throw err;
      // A catalog query failed (the server went away, a permission is missing).
      throw new BackupError('E_SOURCE', ctx.secrets.redact(`${ctx.key}: reading the row counts of database "${database}" failed: ${(err as Error).message}`), {
        cause: err,
      });
    })
    .finally(() => client.end().catch(() => undefined));
  return { stream: child.stdout!, done: done as unknown as Promise<Record<string, unknown>> };
}

/** Streams `pg_dumpall --globals-only`: roles (with their password hashes when we may read them) and tablespaces. */
export function dumpGlobals(ctx: DumpContext, tool: Tool, maintenanceDb: string, superuser: boolean): ArtifactStream {
  const args = ['--globals-only', '--no-password', `--database=${maintenanceDb}`, ...(superuser ? [] : ['--no-role-passwords'])];
  const child = startChild(tool, args, {
    env: childEnv(ctx.conn, undefined),
    what: `${ctx.key}: pg_dumpall --globals-only`,
    code: 'E_SOURCE',
    secrets: ctx.secrets,
    logger: ctx.logger,
    signal: ctx.signal,
  });
  const meta: GlobalsMeta = { kind: 'globals', server: ctx.server, pgDump: { version: tool.version, major: tool.major }, rolePasswords: superuser };
  return { stream: child.stdout!, done: child.exited.then(() => meta as unknown as Record<string, unknown>) };
}

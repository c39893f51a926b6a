import { BackupError, z } from '@sutazai/backup-core';
import { parseUrl, type Connection } from './connection.js';

const GiB = 1024 ** 3;

const checkSchema = z
  .object({
    /** Names the check in restore-test reports; default: the SQL. */
    name: z.string().min(1).optional(),
    /** Run only in the restore test of this database; default: every database of the source. */
    database: z.string().min(1).optional(),
    /** A query whose first column of its first row must be true. */
    sql: z.string().min(1),
  })
  .strict();

export const postgresOptions = z
  .object({
    /** postgres://user:password@host:5432/database?sslmode=... — the database is where the source connects first. */
    url: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    database: z.string().min(1).optional(),
    /** The databases to dump, or "all" (every database that accepts connections, templates excluded). Default: the one the URL names. */
    databases: z.union([z.literal('all'), z.array(z.string().min(1)).min(1)]).optional(),
    /** With `databases: all`, leave these out. */
    excludeDatabases: z.array(z.string().min(1)).default([]),
    /** Also back up roles and tablespaces (`pg_dumpall --globals-only`) as `<source>.globals`. */
    globals: z.boolean().default(false),
    /** pg_dump's archive format; both are read by stock pg_restore. */
    format: z.enum(['custom', 'tar']).default('custom'),
    /**
     * pg_dump's own gzip level (custom format), under the pipeline's compression. 1 by default:
     * gzip's fastest level keeps the bytes that cross the pipe small (see the README's measurements).
     */
    dumpCompression: z.number().int().min(0).max(9).default(1),
    /** pg_restore --jobs for `restore --into` and restore tests (custom format). */
    jobs: z.number().int().min(1).max(64).default(1),
    /** pg_dump --lock-wait-timeout: fail instead of waiting forever behind an exclusive lock ("30s", "5min"). */
    lockWaitTimeout: z
      .string()
      .regex(/^\d+\s*(ms|s|min|h|d)?$/, 'expected a duration like "30s" or "5min"')
      .optional(),
    /** Tables bigger than this (heap bytes) get the planner's row estimate in the manifest instead of count(*). */
    exactCountMaxBytes: z.number().int().nonnegative().default(GiB),
    /** SQL checks a restore test runs in the restored database. */
    checks: z.array(checkSchema).default([]),
    /** The server restore tests restore into (default: the source's own server). */
    restoreTestUrl: z.string().min(1).optional(),
    /** Seconds to wait for a connection. */
    connectTimeout: z.number().positive().default(10),
    /** The programs to use; default: from PATH or /usr/lib/postgresql/<major>/bin, not older than the server. */
    pgDump: z.string().min(1).optional(),
    pgDumpall: z.string().min(1).optional(),
    pgRestore: z.string().min(1).optional(),
    /** A folder holding pg_dump, pg_dumpall and pg_restore. */
    binDir: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (!o.url && !o.host) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'set url (postgres://user@host:5432/database) or host' });
    }
    for (const key of ['url', 'restoreTestUrl'] as const) {
      const value = o[key];
      if (value === undefined) continue;
      try {
        parseUrl(value, key);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: [key], message: (err as Error).message.replace(`${key}: `, '') });
      }
    }
    if (!o.databases && !o.database && o.url && !safeUrlDatabase(o.url)) {
      ctx.addIssue({ code: 'custom', path: ['databases'], message: 'name the databases to back up (databases: [app] or databases: all), or a database in url' });
    }
    if (o.jobs > 1 && o.format !== 'custom') {
      ctx.addIssue({ code: 'custom', path: ['jobs'], message: 'parallel restore needs format: custom' });
    }
  });

export type PostgresOptions = z.output<typeof postgresOptions>;

function safeUrlDatabase(url: string): string | undefined {
  try {
    return parseUrl(url, 'url').database;
  } catch {
    return undefined;
  }
}

/** The source's connection: the URL, with host / port / user / password / database options on top. */
export function sourceConnection(o: PostgresOptions, key: string): Connection {
  const base: Connection = o.url
    ? parseUrl(o.url, `${key}.url`)
    : { host: 'localhost', port: 5432, user: 'postgres', password: undefined, database: undefined, params: {} };
  const conn: Connection = {
    ...base,
    ...(o.host ? { host: o.host } : {}),
    ...(o.port ? { port: o.port } : {}),
    ...(o.user ? { user: o.user } : {}),
    ...(o.password ? { password: o.password } : {}),
    ...(o.database ? { database: o.database } : {}),
    params: { connect_timeout: String(Math.ceil(o.connectTimeout)), ...base.params },
  };
  if (!conn.host) throw new BackupError('E_CONFIG', `${key}: no host`);
  return conn;
}

import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { BackupError } from '@sutazai/backup-core';

/** Where and as whom to connect; the password never leaves this object except into a child's env or the pg client. */
export interface Connection {
  /** A host name, an IP address, or a unix socket folder (starting with `/`). */
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  /** The database the URL (or the `database` option) names, if any. */
  database: string | undefined;
  /** libpq parameters from the URL's query string (sslmode, sslrootcert, ...). */
  params: Record<string, string>;
}

/** URL query parameters passed on to libpq (as PG* environment variables) and to the pg client. */
const PARAM_ENV: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  application_name: 'PGAPPNAME',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  channel_binding: 'PGCHANNELBINDING',
  gssencmode: 'PGGSSENCMODE',
};

const APPLICATION_NAME = 'sutazai-backup';

/**
 * Parses `postgres://user:password@host:port/database?sslmode=...`. `where` names the setting in
 * errors (`sources.app-db.url`, `--into`); the message never repeats the URL, which may hold a password.
 */
export function parseUrl(text: string, where: string): Connection {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BackupError('E_USAGE', `${where}: not a URL: expected postgres://user:password@host:5432/database`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new BackupError('E_USAGE', `${where}: expected a postgres:// or postgresql:// URL, got ${url.protocol}//`);
  }
  const params: Record<string, string> = {};
  let socketHost: string | undefined;
  for (const [key, value] of url.searchParams) {
    if (key === 'host') socketHost = value;
    else if (key in PARAM_ENV) params[key] = value;
    else throw new BackupError('E_USAGE', `${where}: unsupported URL parameter "${key}" (supported: host, ${Object.keys(PARAM_ENV).join(', ')})`);
  }
  const dbPath = decodeURIComponent(url.pathname.replace(/^\//, ''));
  return {
    host: socketHost ?? (url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost'),
    port: url.port ? Number(url.port) : 5432,
    user: url.username ? decodeURIComponent(url.username) : 'postgres',
    password: url.password ? decodeURIComponent(url.password) : undefined,
    database: dbPath || undefined,
    params,
  };
}

/** `user@host:port/db`: for messages (no password). */
export function describe(conn: Connection, database?: string): string {
  const db = database ?? conn.database;
  const host = conn.host.includes(':') ? `[${conn.host}]` : conn.host;
  return `${conn.user}@${host}:${conn.port}${db ? `/${db}` : ''}`;
}

/**
 * What a pg_dump / pg_restore / psql child gets beyond the minimal environment: the connection
 * goes entirely through libpq's PG* variables, so nothing about it (least of all the password) is
 * in the arguments. Without a configured password, libpq's own PGPASSWORD / ~/.pgpass still
 * apply: PG* variables of our environment are passed on, and nothing else of it.
 */
export function childEnv(conn: Connection, database: string | undefined): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = Object.fromEntries(Object.entries(process.env).filter(([name]) => /^PG[A-Z][A-Z_]*$/.test(name)));
  // A service file or a conninfo in PGDATABASE would override what we set.
  delete env.PGSERVICE;
  Object.assign(env, {
    PGHOST: conn.host,
    PGPORT: String(conn.port),
    PGUSER: conn.user,
    PGAPPNAME: APPLICATION_NAME,
  });
  if (database !== undefined) env.PGDATABASE = database;
  else delete env.PGDATABASE;
  for (const [key, value] of Object.entries(conn.params)) env[PARAM_ENV[key]!] = value;
  if (conn.password !== undefined) env.PGPASSWORD = conn.password;
  return env;
}

/** A connected pg client, or a BackupError that says which server refused and why. */
export async function connect(conn: Connection, database: string, what: string, timeoutMs: number): Promise<pg.Client> {
  // Loaded when a connection is made (~70 ms): list, status, verify and config validate need none.
  const { default: Pg } = await import('pg');
  const client = new Pg.Client({
    host: conn.host,
    port: conn.port,
    user: conn.user,
    ...(conn.password !== undefined ? { password: conn.password } : {}),
    database,
    application_name: conn.params.application_name ?? APPLICATION_NAME,
    connectionTimeoutMillis: timeoutMs,
    ...(sslConfig(conn) !== undefined ? { ssl: sslConfig(conn)! } : {}),
  });
  // A connection that dies later (server restart) must not crash the process: queries report it.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new BackupError('E_SOURCE', `${what}: cannot connect to ${describe(conn, database)}: ${connectError(err)}`, {
      cause: err,
      details: { pgCode: (err as { code?: string }).code },
    });
  }
}

function connectError(err: unknown): string {
  const e = err as Error & { code?: string };
  if (e.code === 'ECONNREFUSED') return `connection refused (is the server running and listening there?)`;
  if (e.code === '28P01') return `${e.message} (check the password)`;
  if (e.message === 'timeout expired' || /timeout/i.test(e.message)) return `no answer (timed out): ${e.message}`;
  return e.message;
}

/** node-postgres's TLS settings with libpq's sslmode meanings. */
function sslConfig(conn: Connection): boolean | ConnectionOptions | undefined {
  const mode = conn.params.sslmode;
  if (mode === undefined || mode === 'disable' || mode === 'allow' || mode === 'prefer') return undefined;
  const tls: ConnectionOptions = {};
  if (conn.params.sslrootcert) tls.ca = readFileSync(conn.params.sslrootcert);
  if (conn.params.sslcert) tls.cert = readFileSync(conn.params.sslcert);
  if (conn.params.sslkey) tls.key = readFileSync(conn.params.sslkey);
  if (mode === 'require') tls.rejectUnauthorized = false;
  if (mode === 'verify-ca') tls.checkServerIdentity = () => undefined;
  return tls;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A libpq conninfo value, single-quoted. */
export function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

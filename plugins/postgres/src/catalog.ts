import type pg from 'pg';
import { quoteIdent } from './connection.js';

export interface TableRows {
  rows: number | null;
  /** pg_class.reltuples rather than count(*): the table is larger than `exactCountMaxBytes`. */
  estimated?: true;
}

/** What a restore test checks a restored database against (the artifact's manifest meta). */
export interface DatabaseMeta {
  kind: 'database';
  database: string;
  format: 'custom' | 'tar';
  server: { version: string; versionNum: number };
  pgDump: { version: string; major: number };
  encoding: string;
  collate: string;
  ctype: string;
  sizeBytes: number;
  /** `schema.table` → rows, for every ordinary table that pg_dump dumps the data of. */
  tables: Record<string, TableRows>;
  /** `schema.sequence` → last value (null before the first nextval). */
  sequences: Record<string, number | string | null>;
  largeObjects: number;
}

export interface GlobalsMeta {
  kind: 'globals';
  server: { version: string; versionNum: number };
  pgDump: { version: string; major: number };
  rolePasswords: boolean;
}

const SYSTEM_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

/** Ordinary tables whose rows pg_dump writes: not temporary, not owned by an extension. */
const TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, pg_relation_size(c.oid) AS bytes, c.reltuples AS estimate
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND ${SYSTEM_SCHEMAS}
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY 1, 2`;

export function tableKey(schema: string, name: string): string {
  return `${schema}.${name}`;
}

function toNumber(value: string | number | null): number | string | null {
  if (value === null) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : String(value);
}

/** Row counts: exact below `exactCountMaxBytes` of heap, else the planner's estimate, marked as such. */
export async function countRows(client: pg.Client, exactCountMaxBytes: number, only?: ReadonlySet<string>): Promise<Record<string, TableRows>> {
  const { rows } = await client.query<{ schema: string; name: string; bytes: string; estimate: number }>(TABLES_SQL);
  const out: Record<string, TableRows> = {};
  for (const t of rows) {
    const key = tableKey(t.schema, t.name);
    if (only && !only.has(key)) continue;
    if (Number(t.bytes) > exactCountMaxBytes) {
      // reltuples is -1 for a table never vacuumed or analyzed (PostgreSQL 14+).
      out[key] = { rows: t.estimate >= 0 ? Math.round(t.estimate) : null, estimated: true };
      continue;
    }
    const r = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`);
    out[key] = { rows: Number(r.rows[0]!.n) };
  }
  return out;
}

export async function sequenceValues(client: pg.Client): Promise<Record<string, number | string | null>> {
  const { rows } = await client.query<{ schema: string; name: string; last: string | null }>(`
    SELECT schemaname AS schema, sequencename AS name, last_value::text AS last
    FROM pg_sequences s
    WHERE NOT EXISTS (
      SELECT 1 FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND n.nspname = s.schemaname AND c.relname = s.sequencename)
    ORDER BY 1, 2`);
  const out: Record<string, number | string | null> = {};
  for (const s of rows) out[tableKey(s.schema, s.name)] = toNumber(s.last);
  return out;
}

export async function largeObjectCount(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM pg_largeobject_metadata');
  return Number(rows[0]!.n);
}

export async function serverVersion(client: pg.Client): Promise<{ version: string; versionNum: number }> {
  const { rows } = await client.query<{ v: string; n: string }>(`SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n`);
  return { version: rows[0]!.v.split(' ')[0]!, versionNum: Number(rows[0]!.n) };
}

export function majorOf(versionNum: number): number {
  // 150020 → 15; before 10, 90624 → 9 (9.6: close enough to pick a client program).
  return Math.floor(versionNum / 10000);
}

export async function databaseInfo(client: pg.Client): Promise<{ encoding: string; collate: string; ctype: string; sizeBytes: number }> {
  const { rows } = await client.query<{ encoding: string; collate: string; ctype: string; size: string }>(`
    SELECT pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype, pg_database_size(oid) AS size
    FROM pg_database WHERE datname = current_database()`);
  const r = rows[0]!;
  return { encoding: r.encoding, collate: r.collate, ctype: r.ctype, sizeBytes: Number(r.size) };
}

/** Databases one can connect to, templates excluded. */
export async function listDatabases(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname');
  return rows.map((r) => r.datname);
}

export async function databaseExists(client: pg.Client, name: string): Promise<boolean> {
  const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/** What makes a database "not empty" for a restore: any relation, routine, type, large object or schema of its own. */
export async function userObjectCount(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`
    SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${SYSTEM_SCHEMAS})
         + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${SYSTEM_SCHEMAS})
         + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ${SYSTEM_SCHEMAS} AND t.typrelid = 0 AND t.typelem = 0)
         + (SELECT count(*) FROM pg_largeobject_metadata)
         + (SELECT count(*) FROM pg_namespace n WHERE ${SYSTEM_SCHEMAS} AND n.nspname <> 'public') AS n`);
  return Number(rows[0]!.n);
}

/**
 * CREATE DATABASE from template0 with the original's encoding and locale; when that locale does
 * not exist on this server, with the encoding alone (and says so).
 */
export async function createDatabase(
  client: pg.Client,
  name: string,
  like: { encoding?: string; collate?: string; ctype?: string },
  warn: (message: string) => void,
): Promise<void> {
  const base = `CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0`;
  const encoding = like.encoding ? ` ENCODING ${literal(like.encoding)}` : '';
  if (like.collate && like.ctype) {
    try {
      await client.query(`${base}${encoding} LC_COLLATE ${literal(like.collate)} LC_CTYPE ${literal(like.ctype)}`);
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      // 22023: invalid locale name / incompatible with the encoding; 42809: wrong object type.
      if (code !== '22023' && code !== '42809') throw err;
      warn(`database ${name}: locale ${like.collate}/${like.ctype} of the original is not available here (${(err as Error).message}); created with this server's default locale`);
    }
  }
  await client.query(`${base}${encoding}`);
}

/** Drops a database even while others are connected to it. */
export async function dropDatabase(client: pg.Client, name: string, serverVersionNum: number): Promise<void> {
  if (serverVersionNum >= 130000) {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    return;
  }
  await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
}

export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

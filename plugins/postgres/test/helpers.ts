import fs from 'node:fs';
import pg from 'pg';
import type { PostgresServer } from '../../../test/helpers/servers.js';

/** Three kinds of data a DBA cares about: tables in two schemas, indexes, sequences, a large object, non-ASCII text. */
export function seedSql(database: string, orders: number): string {
  return `
    CREATE SCHEMA sales;
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, city text, joined date NOT NULL DEFAULT '2026-01-01');
    CREATE INDEX customers_city ON customers (city);
    INSERT INTO customers (name, city) VALUES
      ('Zoë Ångström', 'Malmö'), ('Дмитрий Шостакович', 'Москва'), ('山田 太郎', '東京'),
      ('Ana 🙂 Núñez', 'São Paulo'), ('plain ascii', NULL);
    CREATE TABLE sales.orders (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      customer_id int NOT NULL REFERENCES customers (id),
      total numeric(12, 2) NOT NULL,
      note text,
      doc jsonb,
      raw bytea
    );
    CREATE INDEX orders_customer ON sales.orders (customer_id);
    CREATE UNIQUE INDEX orders_ref ON sales.orders ((doc ->> 'ref'));
    INSERT INTO sales.orders (customer_id, total, note, doc, raw)
      SELECT 1 + g % 5, g * 1.25, 'note № ' || g || ' für ${database}', jsonb_build_object('ref', 'R' || g, 'tags', jsonb_build_array('ä', 'ß')), decode(md5(g::text), 'hex')
      FROM generate_series(1, ${orders}) g;
    -- Deleted rows: sequence values that differ from the row counts.
    DELETE FROM sales.orders WHERE id % 10 = 0;
    CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
    SELECT nextval('invoice_no') FROM generate_series(1, 3);
    CREATE SEQUENCE never_used;
    CREATE TABLE empty_table (x int);
    CREATE TABLE documents (id int PRIMARY KEY, body oid NOT NULL);
    INSERT INTO documents VALUES (1, lo_from_bytea(0, convert_to('large object of ${database}: ünïcødé ✓', 'UTF8')));
  `;
}

export interface Fingerprint {
  tables: Record<string, string>;
  sequences: Record<string, string>;
  largeObjects: string[];
  indexes: string[];
}

/** Everything a restore must bring back: each table's rows (count and checksum), sequence states, large objects, indexes. */
export async function fingerprint(server: PostgresServer, database: string): Promise<Fingerprint> {
  const client = new pg.Client({ connectionString: server.urlFor(database) });
  await client.connect();
  try {
    const out: Fingerprint = { tables: {}, sequences: {}, largeObjects: [], indexes: [] };
    const tables = await client.query<{ s: string; t: string }>(
      `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
    );
    for (const { s, t } of tables.rows) {
      const q = `${client.escapeIdentifier(s)}.${client.escapeIdentifier(t)}`;
      const r = await client.query<{ n: string; h: string }>(`SELECT count(*) AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS h FROM ${q} x`);
      out.tables[`${s}.${t}`] = `${r.rows[0]!.n} rows ${r.rows[0]!.h}`;
    }
    const seqs = await client.query<{ s: string; t: string }>(`SELECT schemaname AS s, sequencename AS t FROM pg_sequences ORDER BY 1, 2`);
    for (const { s, t } of seqs.rows) {
      const r = await client.query<{ last_value: string; is_called: boolean }>(`SELECT last_value, is_called FROM ${client.escapeIdentifier(s)}.${client.escapeIdentifier(t)}`);
      out.sequences[`${s}.${t}`] = `${r.rows[0]!.last_value} called=${r.rows[0]!.is_called}`;
    }
    const los = await client.query<{ h: string }>(`SELECT md5(lo_get(oid)) AS h FROM pg_largeobject_metadata ORDER BY 1`);
    out.largeObjects = los.rows.map((r) => r.h);
    const idx = await client.query<{ d: string }>(`SELECT indexdef AS d FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog') ORDER BY 1`);
    out.indexes = idx.rows.map((r) => r.d);
    return out;
  } finally {
    await client.end();
  }
}

export interface SeenProgram {
  pid: number;
  name: string;
  args: string[];
  env: string[];
}

function descendants(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(e)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) for (const c of kids.get(queue.shift()!) ?? []) out.push(c), queue.push(c);
  return out;
}

/**
 * Watches the processes a command starts (as `ps` would show them to another user of the machine):
 * every descendant named in `names`, with its arguments and environment.
 */
export function watchPrograms(rootPid: number, names: string[], onSeen?: (p: SeenProgram) => void): { stop(): SeenProgram[] } {
  const seen = new Map<number, SeenProgram>();
  const timer = setInterval(() => {
    for (const pid of descendants(rootPid)) {
      if (seen.has(pid)) continue;
      try {
        const name = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        if (!names.includes(name)) continue;
        const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
        if (args.length === 0) continue;
        const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
        const p = { pid, name, args, env };
        seen.set(pid, p);
        onSeen?.(p);
      } catch {
        // exited meanwhile
      }
    }
  }, 3);
  return {
    stop() {
      clearInterval(timer);
      return [...seen.values()];
    },
  };
}

/** Bytes a process has written so far (/proc/<pid>/io), or undefined once it is gone. */
export function bytesWritten(pid: number): number | undefined {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    return Number(/^wchar:\s*(\d+)/m.exec(io)?.[1] ?? 0);
  } catch {
    return undefined;
  }
}

/**
 * The testkit's stream check on the postgres source against a real PostgreSQL: a table holding
 * 0 B to 1 MiB, dumped many times beside a busy CPU; what pg_restore reads back out of each
 * restored dump is the same bytes.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceStreamChecks } from '@sutazai/backup-testkit';
import { startPostgres, type PostgresServer } from '../../../test/helpers/servers.js';

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

/** One database per size, made on first use, whose payload each run replaces. */
const databases = new Map<number, Promise<string>>();
function databaseFor(size: number): Promise<string> {
  let made = databases.get(size);
  if (!made) {
    const name = `stream_${size}`;
    made = (async () => {
      await server.psql(`CREATE DATABASE ${name}`);
      await server.psql('CREATE TABLE payload (data bytea NOT NULL); INSERT INTO payload VALUES (\'\');', name);
      return name;
    })();
    databases.set(size, made);
  }
  return made;
}

async function setPayload(database: string, data: Buffer): Promise<void> {
  const client = new pg.Client({ connectionString: server.urlFor(database) });
  await client.connect();
  try {
    await client.query('UPDATE payload SET data = $1', [data]);
  } finally {
    await client.end();
  }
}

/** The payload as pg_restore reads it out of a dump: the COPY line's bytea, hex-encoded. */
function payloadOf(dump: string): Buffer {
  const sql = execFileSync(path.join(server.binDir, 'pg_restore'), ['--data-only', '--table=payload', '-f', '-', dump], { maxBuffer: 64 * 1024 * 1024 }).toString();
  const lines = sql.split('\n');
  const copy = lines.findIndex((l) => l.startsWith('COPY public.payload'));
  expect(copy, 'the dump holds the payload table').toBeGreaterThanOrEqual(0);
  return Buffer.from(lines[copy + 1]!.replace(/^\\\\x/, ''), 'hex');
}

describe('postgres source, a table holding 0 B to 1 MiB (testkit)', () => {
  const checks = sourceStreamChecks({
    use: 'postgres',
    runs: 13,
    fixture: async ({ size, data }) => {
      const database = await databaseFor(size);
      await setPayload(database, data);
      return {
        options: { url: server.urlFor(database), binDir: server.binDir },
        check(restored) {
          expect(payloadOf(path.join(restored, `${database}.pgdump`)).equals(data)).toBe(true);
        },
      };
    },
  });
  // Many backups beside a busy CPU: more than the default time on a loaded machine.
  for (const check of checks) it(check.name, check.run, 600_000);
});

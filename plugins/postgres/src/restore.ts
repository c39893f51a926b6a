import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BackupError,
  isBackupError,
  runChild,
  type PluginContext,
  type RestoreIntoContext,
  type RestoreTestContext,
  type VerifyContext,
} from '@sutazai/backup-core';
import type pg from 'pg';
import {
  countRows,
  createDatabase,
  databaseExists,
  dropDatabase,
  largeObjectCount,
  majorOf,
  sequenceValues,
  serverVersion,
  tableKey,
  userObjectCount,
  type DatabaseMeta,
  type GlobalsMeta,
} from './catalog.js';
import { childEnv, connect, conninfoValue, describe, parseUrl, type Connection } from './connection.js';
import { sourceConnection, type PostgresOptions } from './options.js';
import { findTool, type Tool } from './tools.js';

type Meta = DatabaseMeta | GlobalsMeta;

const GLOBALS_TRAILER = /-- PostgreSQL database cluster dump complete\s*(--\s*)?$/;

function metaOf(artifact: { meta: Record<string, unknown> }): Meta | undefined {
  const kind = artifact.meta.kind;
  return kind === 'database' || kind === 'globals' ? (artifact.meta as unknown as Meta) : undefined;
}

async function readText(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a stream to its end and drops the bytes: the reader checks size and sha256 on the way. */
async function drain(stream: Readable): Promise<void> {
  await pipeline(
    stream,
    new Writable({
      write(_chunk, _e, cb) {
        cb();
      },
    }),
  );
}

function pgRestoreFor(meta: DatabaseMeta | GlobalsMeta, options: PostgresOptions, key: string, prefer?: number): Promise<Tool> {
  return findTool(
    'pg_restore',
    options,
    { minMajor: meta.pgDump.major, ...(prefer !== undefined ? { prefer } : {}), why: `the dump was written by pg_dump ${meta.pgDump.version}` },
    key,
  );
}

/** Deep check: stock `pg_restore --list` reads the archive's table of contents, which lists the data of every table in the manifest. */
export async function verifyArtifact(ctx: VerifyContext & { plugin: PluginContext }, options: PostgresOptions): Promise<void> {
  const meta = metaOf(ctx.artifact);
  if (meta?.kind === 'globals') {
    const text = await readText(await ctx.openDecoded());
    const complete = GLOBALS_TRAILER.test(text);
    ctx.addCheck('globals complete', complete, complete ? undefined : 'globals.sql does not end with pg_dumpall\'s "dump complete" line: it is truncated');
    return;
  }
  if (meta?.kind !== 'database') return;
  const tool = await pgRestoreFor(meta, options, ctx.plugin.key);
  const listing = await runChild(tool, ['--list'], {
    input: await ctx.openDecoded(),
    what: `${ctx.plugin.key}: pg_restore --list of ${ctx.artifact.file}`,
    code: 'E_VERIFY',
    secrets: ctx.plugin.secrets,
    logger: ctx.logger,
  });
  const entries = listing.split('\n').filter((l) => /^\d+;/.test(l)).length;
  ctx.addCheck('pg_restore --list', true, `${entries} entries`);
  const missing = Object.keys(meta.tables).filter((t) => {
    const dot = t.indexOf('.');
    return !listing.includes(` TABLE DATA ${t.slice(0, dot)} ${t.slice(dot + 1)} `);
  });
  ctx.addCheck(
    'table data',
    missing.length === 0,
    missing.length ? `the archive holds no data for ${missing.join(', ')}` : `${Object.keys(meta.tables).length} tables`,
  );
}

interface RestoreRun {
  key: string;
  conn: Connection;
  target: string;
  meta: DatabaseMeta;
  options: PostgresOptions;
  plugin: PluginContext;
  logger: RestoreIntoContext['logger'];
  /** The archive as a file (parallel restore), or a function that opens it as a stream. */
  input: { file: string } | { open(): Promise<Readable> };
  /** pg_restore arguments beyond the connection and the input. */
  extraArgs: string[];
  tool: Tool;
}

/** Runs pg_restore into `target`. One transaction unless --jobs: a failed restore leaves nothing behind. */
async function pgRestore(r: RestoreRun): Promise<void> {
  const parallel = 'file' in r.input && r.options.jobs > 1 && r.meta.format === 'custom';
  const args = [
    `--dbname=dbname=${conninfoValue(r.target)}`,
    '--no-password',
    '--exit-on-error',
    ...(parallel ? [`--jobs=${r.options.jobs}`] : ['--single-transaction']),
    ...r.extraArgs,
    ...('file' in r.input ? [r.input.file] : []),
  ];
  await runChild(r.tool, args, {
    ...('open' in r.input ? { input: await r.input.open() } : {}),
    env: childEnv(r.conn, r.target),
    what: `${r.key}: pg_restore of ${r.meta.database} into ${describe(r.conn, r.target)}`,
    code: 'E_RESTORE',
    secrets: r.plugin.secrets,
    logger: r.logger,
  });
}

async function withClient<T>(conn: Connection, database: string, key: string, options: PostgresOptions, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(conn, database, key, options.connectTimeout * 1000);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Connects to a server's maintenance database: `postgres`, else `template1`. */
async function maintenance(conn: Connection, key: string, options: PostgresOptions): Promise<pg.Client> {
  try {
    return await connect(conn, 'postgres', key, options.connectTimeout * 1000);
  } catch (err) {
    if ((err as BackupError).details?.pgCode !== '3D000') throw err;
    return connect(conn, 'template1', key, options.connectTimeout * 1000);
  }
}

/**
 * `restore --into URL`: `--database DB` picks one database of the source and restores it into the
 * database the URL names (or under its own name); without it, a URL naming a database takes the
 * source's only database, and a URL naming none restores each database under its own name.
 * Returns false for artifacts this call does not restore.
 */
export async function restoreInto(ctx: RestoreIntoContext & { plugin: PluginContext }, options: PostgresOptions): Promise<boolean> {
  const key = ctx.plugin.key;
  ctx.plugin.secrets.addFromUrl(ctx.into);
  const conn = parseUrl(ctx.into, '--into');
  const meta = metaOf(ctx.artifact);
  const databases = ctx.manifest.artifacts
    .filter((a) => a.source === ctx.artifact.source && metaOf(a)?.kind === 'database')
    .map((a) => (a.meta as unknown as DatabaseMeta).database);
  if (ctx.database !== undefined && !databases.includes(ctx.database)) {
    throw new BackupError('E_USAGE', `--database ${ctx.database}: snapshot ${ctx.manifest.id} holds no such database of source ${ctx.artifact.source} (its databases: ${databases.join(', ') || 'none'})`);
  }
  if (conn.database !== undefined && ctx.database === undefined && databases.length > 1) {
    throw new BackupError(
      'E_USAGE',
      `--into names database ${conn.database}, but source ${ctx.artifact.source} holds ${databases.length} databases (${databases.join(', ')}): pick one with --database, or give a URL without a database to restore each under its own name`,
    );
  }
  if (meta?.kind === 'globals') {
    ctx.logger.info(`${ctx.artifact.file}: roles and tablespaces are not applied by restore --into; restore it with --to DIR and review globals.sql before running it with psql`);
    return false;
  }
  if (meta?.kind !== 'database') throw new BackupError('E_RESTORE', `${ctx.artifact.file}: not a database dump of the postgres plugin (no meta.kind)`);
  if (ctx.database !== undefined && meta.database !== ctx.database) return false;
  const target = conn.database ?? meta.database;

  let created = false;
  const admin = await maintenance(conn, key, options);
  let serverNum: number;
  try {
    serverNum = (await serverVersion(admin)).versionNum;
    if (await databaseExists(admin, target)) {
      const objects = await withClient(conn, target, key, options, userObjectCount);
      if (objects > 0 && !ctx.clean) {
        throw new BackupError(
          'E_RESTORE',
          `database ${target} on ${describe(conn, '')} is not empty (${objects} objects): restore into a new or empty database, or pass --clean to replace what the dump holds`,
        );
      }
    } else {
      await createDatabase(admin, target, meta, (m) => ctx.logger.warn(m));
      created = true;
      ctx.logger.info(`created database ${target} on ${describe(conn, '')}`);
    }
  } finally {
    await admin.end().catch(() => undefined);
  }

  const parallel = options.jobs > 1 && meta.format === 'custom';
  const tool = await pgRestoreFor(meta, options, key, majorOf(serverNum));
  try {
    let input: RestoreRun['input'];
    if (parallel) {
      input = { file: await ctx.materialize() };
    } else {
      // The whole artifact is checked (size, sha256, decoding) before pg_restore sees a byte: it
      // could otherwise commit what it read before a corruption at the end is found.
      await drain(await ctx.openDecoded());
      input = { open: () => ctx.openDecoded() };
    }
    await pgRestore({
      key,
      conn,
      target,
      meta,
      options,
      plugin: ctx.plugin,
      logger: ctx.logger,
      input,
      extraArgs: ctx.clean ? ['--clean', '--if-exists'] : [],
      tool,
    });
  } catch (err) {
    if (created) {
      await withClient(conn, 'postgres', key, options, (c) => dropDatabase(c, target, serverNum)).catch((e: Error) =>
        ctx.logger.warn(`could not drop the half-restored database ${target}: ${e.message}`),
      );
    }
    throw err;
  }
  ctx.logger.info(`restored ${ctx.artifact.file} (database ${meta.database}) into ${describe(conn, target)}`);
  return true;
}

/**
 * Restore test: pg_restore into a scratch database `<db>_restoretest_<id>`, compare row counts,
 * sequence values and large objects with the manifest, run the configured checks, and drop the scratch database
 * whatever happened.
 */
export async function restoreTest(ctx: RestoreTestContext & { plugin: PluginContext }, options: PostgresOptions): Promise<void> {
  const key = ctx.plugin.key;
  const meta = metaOf(ctx.artifact);
  if (meta?.kind === 'globals') {
    const text = await readText(createReadStream(ctx.restoredPath));
    ctx.addCheck('globals complete', GLOBALS_TRAILER.test(text));
    return;
  }
  if (meta?.kind !== 'database') return;
  const conn = options.restoreTestUrl ? parseUrl(options.restoreTestUrl, `${key}.restoreTestUrl`) : sourceConnection(options, key);
  const scratch = `${meta.database.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 40)}_restoretest_${randomBytes(4).toString('hex')}`;
  const admin = await maintenance(conn, key, options);
  let serverNum = 0;
  try {
    serverNum = (await serverVersion(admin)).versionNum;
    await createDatabase(admin, scratch, meta, (m) => ctx.logger.warn(m));
    ctx.logger.info(`restore test of ${ctx.artifact.file} in scratch database ${scratch} on ${describe(conn, '')}`);
    const tool = await pgRestoreFor(meta, options, key, majorOf(serverNum));
    // Owners and grants refer to roles the test server may not have: the test checks the data.
    await pgRestore({
      key,
      conn,
      target: scratch,
      meta,
      options,
      plugin: ctx.plugin,
      logger: ctx.logger,
      input: { file: ctx.restoredPath },
      extraArgs: ['--no-owner', '--no-privileges'],
      tool,
    });
    ctx.addCheck('pg_restore', true, `into ${scratch}`);
    await withClient(conn, scratch, key, options, async (client) => {
      const exact = Object.entries(meta.tables).filter(([, t]) => !t.estimated);
      const actual = await countRows(client, Number.MAX_SAFE_INTEGER, new Set(exact.map(([name]) => name)));
      for (const [table, expected] of exact) {
        const got = actual[table]?.rows;
        const ok = got === expected.rows;
        ctx.addCheck(`rows ${table}`, ok, ok ? `${got} rows` : `table ${table}: ${got ?? 'missing'} rows restored, the manifest says ${expected.rows}`);
      }
      const skipped = Object.keys(meta.tables).length - exact.length;
      if (skipped > 0) ctx.logger.info(`${skipped} table(s) have estimated row counts in the manifest and were not compared`);
      // Sequences: what the next nextval() continues from (manifests before they were recorded have none).
      const sequences = Object.entries(meta.sequences ?? {});
      if (sequences.length) {
        const restored = await sequenceValues(client);
        for (const [sequence, expected] of sequences) {
          const got = restored[sequence];
          const ok = got !== undefined && String(got) === String(expected);
          ctx.addCheck(
            `sequence ${sequence}`,
            ok,
            ok ? `at ${got ?? 'its start'}` : `sequence ${sequence}: ${got === undefined ? 'missing' : `restored at ${got ?? 'its start'}`}, the manifest says ${expected ?? 'its start'}`,
          );
        }
      }
      const objects = await largeObjectCount(client);
      ctx.addCheck('large objects', objects === meta.largeObjects, `${objects} restored, the manifest says ${meta.largeObjects}`);
      for (const check of options.checks) {
        if (check.database !== undefined && check.database !== meta.database) continue;
        const name = `check ${check.name ?? check.sql}`;
        try {
          const { rows } = await client.query<Record<string, unknown>>({ text: check.sql, rowMode: 'array' } as never);
          const value = (rows[0] as unknown as unknown[] | undefined)?.[0];
          ctx.addCheck(name, value === true, value === true ? undefined : `returned ${JSON.stringify(value ?? null)}, expected true`);
        } catch (err) {
          ctx.addCheck(name, false, ctx.plugin.secrets.redact((err as Error).message));
        }
      }
    });
  } catch (err) {
    if (isBackupError(err)) throw err;
    throw new BackupError('E_RESTORE_TEST', ctx.plugin.secrets.redact(`${key}: restore test of ${meta.database}: ${(err as Error).message}`), { cause: err });
  } finally {
    await dropDatabase(admin, scratch, serverNum).catch((e: Error) =>
      ctx.logger.error(`could not drop the scratch database ${scratch} on ${describe(conn, '')}: ${e.message}: drop it by hand`),
    );
    await admin.end().catch(() => undefined);
  }
}

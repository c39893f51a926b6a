import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { BackupError, defineSource, expandHome, z } from '@sutazai/backup-core';
import { openDatabase, type Database } from './database.js';

export { openDatabase, type Database } from './database.js';

export const sqliteOptions = z
  .object({
    /** The database file; relative paths resolve from the rc file's folder. */
    path: z.string().min(1),
    /** How long to wait for a lock held by a writer, in milliseconds. */
    busyTimeout: z.number().int().min(0).default(10_000),
  })
  .strict();

export type SqliteOptions = z.input<typeof sqliteOptions>;

export interface TableCounts {
  [table: string]: number;
}

/** Row counts of every user table, read in one transaction so they agree with each other. */
export function tableCounts(db: Database): TableCounts {
  const tables = db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    .pluck()
    .all() as string[];
  const counts: TableCounts = {};
  db.transaction(() => {
    for (const t of tables) counts[t] = db.prepare(`SELECT count(*) FROM "${t.replace(/"/g, '""')}"`).pluck().get() as number;
  })();
  return counts;
}

/** `PRAGMA integrity_check`: "ok", or the problems it found. */
export function integrityCheck(file: string, what = file): string {
  const db = openDatabase(file, { readonly: true, fileMustExist: true }, what);
  try {
    const rows = db.prepare('PRAGMA integrity_check').pluck().all() as string[];
    return rows.join('; ');
  } finally {
    db.close();
  }
}

/**
 * Opens a read transaction on `db`, waiting up to `busyTimeout` for a writer's exclusive lock.
 * Without it, better-sqlite3's `backup()` resolves as if it were done, having copied nothing,
 * when its first step finds the database locked.
 */
function holdReadLock(db: Database, file: string, options: { busyTimeout: number; what: string }): void {
  try {
    db.exec('BEGIN');
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
  } catch (err) {
    if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
    throw new BackupError(
      'E_SOURCE',
      `${options.what}: ${file} stayed locked by another writer for longer than busyTimeout (${options.busyTimeout} ms); raise ${options.what}.busyTimeout or back up while the writer is idle`,
      { cause: err, details: { path: file } },
    );
  }
}

/**
 * A consistent copy of `file` at `copy` (0600), through SQLite's online backup API: safe under a
 * concurrent writer, WAL or not. The copy is a self-contained rollback-journal database (one file).
 * `what` names the source in errors.
 */
export async function onlineCopy(file: string, copy: string, options: { busyTimeout: number; what: string }): Promise<void> {
  let source: Database;
  try {
    source = openDatabase(file, { fileMustExist: true, timeout: options.busyTimeout }, options.what);
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError('E_SOURCE', `${options.what}: cannot open ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    holdReadLock(source, file, options);
    // After the first step, copy all remaining pages in one step: that step reads one
    // consistent snapshot, so a concurrent writer cannot make the copy start over forever.
    const progress = await source.backup(copy, { progress: () => 0x7fffffff });
    if (progress.totalPages === 0) throw new Error('no page was copied');
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError('E_SOURCE', `${options.what}: online backup of ${file} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    source.close();
  }
  await fsp.chmod(copy, 0o600);
  const db = openDatabase(copy, { fileMustExist: true }, options.what);
  try {
    db.pragma('journal_mode = DELETE');
  } finally {
    db.close();
  }
}

/**
 * `use: sqlite` — a consistent copy through SQLite's online backup API, safe under a concurrent
 * writer (WAL or not), with per-table row counts in the manifest for restore tests.
 */
export default defineSource({
  name: 'sqlite',
  options: sqliteOptions,
  async collect(ctx, options) {
    const file = path.resolve(ctx.configDir, expandHome(options.path));
    try {
      const st = await fsp.stat(file);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
      await fsp.access(file, fsp.constants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is not a file' : `cannot be read (${code})`;
      throw new BackupError('E_SOURCE', `${ctx.key}: database ${file} ${reason}`, { plugin: ctx.key, details: { path: file } });
    }
    return [
      {
        type: 'file' as const,
        name: ctx.instance,
        ext: 'sqlite',
        filename: path.basename(file),
        async open({ tempDir }) {
          const copy = path.join(tempDir, 'copy.sqlite');
          await onlineCopy(file, copy, { busyTimeout: options.busyTimeout, what: ctx.key });
          const db = openDatabase(copy, { fileMustExist: true }, ctx.key);
          let meta: Record<string, unknown>;
          try {
            meta = {
              path: file,
              tables: tableCounts(db),
              pageSize: db.pragma('page_size', { simple: true }),
              sqliteVersion: db.prepare('SELECT sqlite_version()').pluck().get(),
            };
          } finally {
            db.close();
          }
          return { stream: createReadStream(copy, { highWaterMark: 1024 * 1024 }), done: Promise.resolve(meta) };
        },
      },
    ];
  },
  async verify(ctx) {
    const file = await ctx.materialize();
    const result = integrityCheck(file, ctx.plugin.key);
    ctx.addCheck('integrity_check', result === 'ok', result === 'ok' ? undefined : result);
  },
  async restoreTest(ctx) {
    const file = ctx.restoredPath;
    const result = integrityCheck(file, ctx.plugin.key);
    ctx.addCheck('integrity_check', result === 'ok', result === 'ok' ? undefined : result);
    const expected = (ctx.artifact.meta.tables ?? {}) as TableCounts;
    const db = openDatabase(file, { readonly: true, fileMustExist: true }, ctx.plugin.key);
    let actual: TableCounts;
    try {
      actual = tableCounts(db);
    } finally {
      db.close();
    }
    for (const [table, rows] of Object.entries(expected)) {
      const got = actual[table];
      ctx.addCheck(`rows ${table}`, got === rows, got === rows ? `${rows} rows` : `table ${table}: ${got ?? 'missing'} rows, manifest says ${rows}`);
    }
  },
});

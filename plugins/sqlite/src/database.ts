import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { BackupError } from '@sutazai/backup-core';

export type Database = BetterSqlite3.Database;
type Constructor = typeof BetterSqlite3;

let constructor: Constructor | undefined;

/**
 * Opens `file` with better-sqlite3, loaded on first use: `config validate`, `list` and the other
 * sources never load it. A native module that does not load (never built: pnpm's default and
 * `npm install --ignore-scripts` skip its build; built for another Node after an upgrade) becomes
 * an error for this source alone that names the fix. `what` names the source (`sources.agents`).
 */
export function openDatabase(file: string, options: BetterSqlite3.Options, what: string): Database {
  constructor ??= createRequire(import.meta.url)('better-sqlite3') as Constructor;
  try {
    return new constructor(file, options);
  } catch (err) {
    const unloadable = bindingProblem(err as NodeJS.ErrnoException);
    if (!unloadable) throw err;
    throw new BackupError(
      'E_SOURCE',
      `${what}: better-sqlite3 cannot load its native module under Node.js ${process.version} (${unloadable}); ` +
        'run `npm rebuild better-sqlite3` where sutazai-backup is installed (it needs a C++ compiler, or downloads a prebuilt module)',
      { cause: err, details: { node: process.version, modules: process.versions.modules } },
    );
  }
}

/** Why better-sqlite3's addon did not load, or undefined when the error is about the database. */
function bindingProblem(err: NodeJS.ErrnoException): string | undefined {
  const message = err.message ?? '';
  const version = /NODE_MODULE_VERSION (\d+)[\s\S]*NODE_MODULE_VERSION (\d+)/.exec(message);
  if (version) return `it was built for NODE_MODULE_VERSION ${version[1]}, this Node.js needs ${version[2]}`;
  if (/Could not locate the bindings file|better_sqlite3\.node/.test(message) || err.code === 'ERR_DLOPEN_FAILED') return 'it was never built for this install';
  return undefined;
}

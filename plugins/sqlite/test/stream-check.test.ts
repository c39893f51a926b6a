/**
 * The testkit's stream check on the sqlite source: a database holding 0 B to 1 MiB, backed up many
 * times beside a busy CPU; the restored database holds the same bytes and passes integrity_check.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { sourceStreamChecks } from '@sutazai/backup-testkit';
import { integrityCheck } from '../src/index.js';

describe('sqlite source, a database holding 0 B to 1 MiB (testkit)', () => {
  const checks = sourceStreamChecks({
    use: 'sqlite',
    runs: 13,
    fixture: ({ data, dir }) => {
      const file = path.join(dir, 'agents.db');
      const db = new Database(file);
      db.exec('CREATE TABLE payload (data BLOB NOT NULL)');
      db.prepare('INSERT INTO payload VALUES (?)').run(data);
      db.close();
      return {
        options: { path: file },
        check(restored) {
          // The online copy is a new database file: its payload is what must match.
          const copy = path.join(restored, 'agents.db');
          expect(integrityCheck(copy)).toBe('ok');
          const db = new Database(copy, { readonly: true });
          try {
            expect(Buffer.compare(db.prepare('SELECT data FROM payload').pluck().get() as Buffer, data)).toBe(0);
          } finally {
            db.close();
          }
        },
      };
    },
  });
  // Many backups beside a busy CPU: more than the default time on a loaded machine.
  for (const check of checks) it(check.name, check.run, 600_000);
});

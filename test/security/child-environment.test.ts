/**
 * Child programs get a minimal environment (PATH, HOME, the locale, TZ, TMPDIR), what they need,
 * and their own secret: never the tool's whole environment, which holds the encryption
 * passphrase and the notifiers' secrets. A child's /proc/<pid>/environ is read while it runs:
 * a real pg_dump held by a table lock, the command source's program (which prints its own
 * environment into the artifact), and rsync (through a wrapper that records its environment and
 * then runs the real rsync).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeTree } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, writeRc, type CliResult } from '../helpers/cli.js';
import { descendants, type ProcessSeen } from '../helpers/proc.js';
import { startHttpReceiver, startPostgres, type HttpReceiver, type PostgresServer } from '../helpers/servers.js';

const secret = (name: string) => `${name}-${randomBytes(8).toString('hex')}`;
/** The tool's environment: its secrets, and a variable nothing needs. */
const toolEnv = {
  BACKUP_ENCRYPTION_PASSPHRASE: secret('gpg-passphrase'),
  WEBHOOK_SECRET: secret('webhook-secret'),
  WEBHOOK_TOKEN: secret('webhook-token'),
  APP_DB_PASSWORD: secret('db-password'),
  COMMAND_TOKEN: secret('command-token'),
  SUTAZAI_TEST_UNRELATED: secret('unrelated'),
};
const { BACKUP_ENCRYPTION_PASSPHRASE: passphrase, WEBHOOK_SECRET: webhookSecret, WEBHOOK_TOKEN: webhookToken, APP_DB_PASSWORD: dbPassword, COMMAND_TOKEN: commandToken } = toolEnv;

/** Which of the tool's secrets (by variable name) an environment holds, anywhere in it. */
function secretsIn(environ: string[]): string[] {
  const text = environ.join('\n');
  return Object.entries(toolEnv)
    .filter(([name, value]) => text.includes(value) || environ.some((e) => e.startsWith(`${name}=`)))
    .map(([name]) => name);
}

const names = (environ: string[]) => environ.map((e) => e.slice(0, e.indexOf('='))).sort();

/** Holds an ACCESS EXCLUSIVE lock on a table in a psql session until released: pg_dump waits behind it. */
function holdLock(pg: PostgresServer, db: string, table: string): { locked: Promise<void>; release(): Promise<void> } {
  const psql: ChildProcessWithoutNullStreams = spawn(path.join(pg.binDir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db], { env: { ...process.env, ...pg.env } });
  let out = '';
  psql.stdout.on('data', (d: Buffer) => (out += d.toString()));
  psql.stdin.write(`BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n`);
  const exited = new Promise<void>((resolve) => psql.once('close', () => resolve()));
  return {
    locked: (async () => {
      for (let i = 0; i < 500 && !out.includes('locked'); i++) await new Promise((r) => setTimeout(r, 20));
      if (!out.includes('locked')) throw new Error('psql did not take the lock');
    })(),
    async release() {
      psql.stdin.end('COMMIT;\n');
      await exited;
    },
  };
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('child programs get a minimal environment', () => {
  let work: string;
  let pg: PostgresServer;
  let hook: HttpReceiver;
  let run: CliResult;
  let pgDump: ProcessSeen;

  beforeAll(async () => {
    work = await tempDir('sutazai-child-env-');
    pg = await startPostgres({ password: dbPassword });
    await pg.psql('CREATE DATABASE envtest;');
    await pg.psql('CREATE TABLE held (id int); INSERT INTO held VALUES (1), (2);', 'envtest');
    hook = await startHttpReceiver(() => ({ status: 202 }));
    await writeTree(path.join(work, 'src'), { 'a.txt': 'a\n' });
    // rsync through a wrapper that records the environment it was given, then runs rsync.
    await fsp.writeFile(path.join(work, 'rsync-wrapper.sh'), `#!/bin/sh\ntr '\\000' '\\n' < /proc/$$/environ > "${path.join(work, 'rsync.environ')}"\nexec rsync "$@"\n`, { mode: 0o700 });
    const url = new URL(pg.urlFor('envtest'));
    url.password = '${APP_DB_PASSWORD}';
    await writeRc(
      work,
      `backupRoot: ./backups
host: childenv
encryption: { use: gpg, passphrase: "\${BACKUP_ENCRYPTION_PASSPHRASE}" }
sources:
  app-db: { use: postgres, url: "${decodeURI(url.toString())}", pgDump: ${path.join(pg.binDir, 'pg_dump')} }
  printed: { use: command, command: env, env: { OWN_TOKEN: "\${COMMAND_TOKEN}" } }
destinations:
  nas: { use: rsync, target: ./nas, rsync: ${path.join(work, 'rsync-wrapper.sh')} }
notify:
  hook: { use: webhook, url: "${hook.url}/in?token=\${WEBHOOK_TOKEN}", secret: "\${WEBHOOK_SECRET}", on: [success, failure] }
`,
    );

    const lock = holdLock(pg, 'envtest', 'held');
    await lock.locked;
    const { child, result } = startCli(['run', '--json'], { cwd: work, env: toolEnv });
    try {
      // pg_dump (the dump, not its --version probe) waits behind the lock: its environment is read while it runs.
      pgDump = await waitFor('pg_dump', () => descendants(child.pid!).find((p) => /\/pg_dump .*--snapshot=/.test(p.cmdline)));
    } finally {
      await lock.release();
    }
    run = await result;
  });
  afterAll(async () => {
    await hook?.stop();
    await pg?.stop();
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('the run backed up both sources, replicated through rsync and notified the webhook', () => {
    expect(run.code, run.stderr).toBe(0);
    expect((run.json().artifacts as { source: string }[]).map((a) => a.source).sort()).toEqual(['app-db', 'printed']);
    expect(run.json().destinations).toMatchObject([{ name: 'nas', status: 'ok' }]);
    expect(hook.requests.at(-1)!.path).toBe(`/in?token=${webhookToken}`);
    expect(hook.requests.at(-1)!.headers['x-sutazai-signature']).toMatch(/^sha256=/);
  });

  it('pg_dump has its connection and its own password, and none of the tool\'s secrets', () => {
    expect(pgDump.environ).toContain(`PGPASSWORD=${dbPassword}`);
    expect(pgDump.environ).toEqual(expect.arrayContaining([`PGHOST=${pg.host}`, `PGPORT=${pg.port}`, 'PGDATABASE=envtest', `PATH=${process.env.PATH}`]));
    expect(secretsIn(pgDump.environ.filter((e) => !e.startsWith('PGPASSWORD=')))).toEqual([]);
    expect(pgDump.cmdline).not.toContain(dbPassword);
    for (const name of names(pgDump.environ)) expect(name).toMatch(/^(PG[A-Z_]+|PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR)$/);
  });

  it('the command source gets its own env and none of the tool\'s secrets', async () => {
    const restore = await runCli(['restore', 'latest', '--to', path.join(work, 'restored'), '--source', 'printed'], { cwd: work, env: toolEnv });
    expect(restore.code, restore.stderr).toBe(0);
    const environ = (await fsp.readFile(path.join(work, 'restored', 'printed', 'printed.out'), 'utf8')).split('\n').filter(Boolean);
    expect(environ).toContain(`OWN_TOKEN=${commandToken}`);
    expect(environ.some((e) => e.startsWith('PATH='))).toBe(true);
    expect(secretsIn(environ.filter((e) => !e.startsWith('OWN_TOKEN=')))).toEqual([]);
  });

  it('rsync gets none of the tool\'s secrets', async () => {
    const environ = (await fsp.readFile(path.join(work, 'rsync.environ'), 'utf8')).split('\n').filter(Boolean);
    expect(environ.some((e) => e.startsWith('PATH='))).toBe(true);
    expect(environ).toContain('LC_ALL=C.UTF-8');
    expect(secretsIn(environ)).toEqual([]);
  });

  it('the secrets are in no log or report of the run', () => {
    for (const value of [passphrase, webhookSecret, webhookToken, dbPassword, commandToken]) {
      expect(run.stdout).not.toContain(value);
      expect(run.stderr).not.toContain(value);
    }
  });
});

/**
 * One unique marker is every secret of one rc file but the database's password, which is a second
 * marker. Neither may appear in any log (at debug level), report, manifest, object name or alert
 * body, nor in any child process's command line while a run or restore is going (polled from
 * /proc). The marker may be in no child's environment; the database password only in pg_dump's
 * and pg_restore's, whose own secret it is. Then: the rc file's permissions are checked, and
 * everything the tool writes is private whatever the umask.
 *
 * Secrets covered: the gpg passphrase (from the environment), a notifier's password and URL
 * password (literal in the rc file), a webhook's URL token, signing secret and cookie (its
 * receiver refuses every delivery and echoes the request back), and, when those plugins are
 * installed, the PostgreSQL password, the S3 secret key (s3rver checks the access key id, not the
 * signature, so any secret works) and the SMTP password of the email notifier (see `optionalSlots`).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { writeTree } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, REPO_ROOT, runCli, startCli, tempDir, writeRc, type CliResult } from '../helpers/cli.js';
import { echoingReceiver } from '../helpers/notify-receivers.js';
import { watchDescendants, type ProcessSeen } from '../helpers/proc.js';
import { startHttpReceiver, startPostgres, startS3, startSmtp, type HttpReceiver, type PostgresServer, type SmtpTestServer } from '../helpers/servers.js';

const MARKER = `Mk${randomBytes(10).toString('hex')}Zq`;
/** The database's password: pg_dump's and pg_restore's own secret, in their environment only. */
const PG_MARKER = `Pg${randomBytes(10).toString('hex')}Zq`;
const MARKERS = [MARKER, PG_MARKER];

const installed = (name: string) => {
  try {
    createRequire(path.join(REPO_ROOT, 'noop.js')).resolve(`@sutazai/backup-plugin-${name}`);
    return true;
  } catch {
    return false;
  }
};

/** A secret of a plugin that may not be installed yet: its rc lines and what it needs running. */
interface SecretSlot {
  plugin: string;
  start(): Promise<{ rc: { sources?: string; destinations?: string; notify?: string }; stop(): Promise<void>; received?: () => string }>;
}

const optionalSlots: SecretSlot[] = [
  {
    plugin: 'postgres',
    async start() {
      const server: PostgresServer = await startPostgres({ password: PG_MARKER });
      return { rc: { sources: `  app-db: { use: postgres, url: "${server.url}", databases: [postgres] }\n` }, stop: () => server.stop() };
    },
  },
  {
    plugin: 's3',
    async start() {
      const s3 = await startS3({ buckets: ['secrets-marker'] });
      return {
        rc: {
          destinations: `  offsite: { use: s3, bucket: secrets-marker, endpoint: "${s3.endpoint}", region: ${s3.region}, forcePathStyle: true, accessKeyId: ${s3.accessKeyId}, secretAccessKey: "${MARKER}" }\n`,
        },
        stop: () => s3.stop(),
        // What the server stored: object names, metadata and bodies.
        received: () =>
          readdirSync(s3.directory, { recursive: true, withFileTypes: true })
            .map((e) => {
              const p = path.join(e.parentPath, e.name);
              return e.isFile() ? `${p}\n${readFileSync(p, 'latin1')}` : p;
            })
            .join('\n'),
      };
    },
  },
  {
    plugin: 'email',
    async start() {
      const smtp: SmtpTestServer = await startSmtp({ auth: { user: 'sutazai', password: MARKER }, starttls: true });
      return {
        rc: { notify: `  mail: { use: email, url: "${smtp.url}", tls: starttls, rejectUnauthorized: false, from: backup@example.com, to: [ops@example.com] }\n` },
        stop: () => smtp.stop(),
        received: () => JSON.stringify(smtp.messages),
      };
    },
  },
];

async function runWatched(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  const { child, result } = startCli(args, { cwd, env });
  const watch = watchDescendants(child.pid!);
  const done = await result.finally(() => watch.stop());
  return { result: done, children: [...watch.seen.values()] };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    out.push(path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
  }
  return out;
}

describe('one marker as every secret', () => {
  let work: string;
  const outputs: CliResult[] = [];
  const stops: (() => Promise<void>)[] = [];
  const received: (() => string)[] = [];
  let children: ProcessSeen[] = [];
  let echo: HttpReceiver;
  const env = { BACKUP_ENCRYPTION_PASSPHRASE: MARKER };

  beforeAll(async () => {
    work = await tempDir('sutazai-secrets-');
    echo = await startHttpReceiver(echoingReceiver(401).handler);
    stops.push(() => echo.stop());
    await writeTree(path.join(work, 'src'), { 'app.yml': 'port: 8080\n', data: { 'blob.bin': randomBytes(2 * 1024 * 1024) } });
    // A notifier that records the notification it is given (title, lines, the run report): what
    // every alert body is made from.
    await fsp.writeFile(
      path.join(work, 'record-alerts.mjs'),
      `import { appendFileSync } from 'node:fs';
import { defineNotifier, z } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/core/dist/index.js'))};
export default defineNotifier({
  name: 'record-alerts',
  options: z.object({ file: z.string(), password: z.string(), url: z.string() }).strict(),
  async send(notification, ctx, options) { appendFileSync(options.file, JSON.stringify(notification) + '\\n', { mode: 0o600 }); },
});
`,
    );
    const extra = { sources: '', destinations: '', notify: '' };
    for (const slot of optionalSlots.filter((s) => installed(s.plugin))) {
      const started = await slot.start();
      stops.push(started.stop);
      if (started.received) received.push(started.received);
      extra.sources += started.rc.sources ?? '';
      extra.destinations += started.rc.destinations ?? '';
      extra.notify += started.rc.notify ?? '';
    }
    await writeRc(
      work,
      `backupRoot: ./backups
host: secrets
encryption: { use: gpg, passphrase: "\${BACKUP_ENCRYPTION_PASSPHRASE}" }
sources:
  configs: { use: files, paths: [./src] }
  missing: { use: files, paths: [./not-there] }
${extra.sources}destinations:
  copy: { use: local, path: ./copy }
${extra.destinations}notify:
  alerts: { use: ./record-alerts.mjs, on: [success, failure], file: ./alerts.jsonl, password: "${MARKER}", url: "smtp://backup:${MARKER}@127.0.0.1:2525" }
  hook: { use: webhook, on: [success, failure], url: "${echo.url}/in?token=${MARKER}", secret: "${MARKER}", headers: { Cookie: "session=${MARKER}" } }
${extra.notify}profiles:
  daily: { sources: [configs${extra.sources ? ', app-db' : ''}] }
  broken: { sources: [missing] }
`,
    );

    const run = await runWatched(['run', '--profile', 'daily', '--json'], work, env);
    expect(run.result.code, run.result.stderr).toBe(0);
    outputs.push(run.result);
    children.push(...run.children);
    const restore = await runWatched(['restore', 'latest', '--to', './restored', '--source', 'configs'], work, env);
    expect(restore.result.code, restore.result.stderr).toBe(0);
    outputs.push(restore.result);
    children.push(...restore.children);
    for (const args of [['run', '--profile', 'broken', '--json'], ['verify', '--all', '--json'], ['list', '--json'], ['status', '--json'], ['config', 'show'], ['restore-test', '--json']]) {
      outputs.push(await runCli(args, { cwd: work, env }));
    }
  });
  afterAll(async () => {
    for (const stop of stops) await stop();
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('the runs did what they should (so the checks below looked at real output)', () => {
    // status is unhealthy (1): the last run, profile broken, failed.
    expect(outputs.map((o) => o.code)).toEqual([0, 0, 1, 0, 0, 1, 0, 0]);
    expect(outputs[0]!.stderr).toMatch(/"level":"debug"/);
    const sources = (outputs[0]!.json().artifacts as { source: string }[]).map((a) => a.source);
    expect(sources).toEqual(expect.arrayContaining(['configs', ...(installed('postgres') ? ['app-db'] : [])]));
    const replicated = (outputs[0]!.json().destinations as { name: string; status: string; sent: number }[]).filter((d) => d.status === 'ok' && d.sent > 0);
    expect(replicated.map((d) => d.name).sort()).toEqual(['copy', ...(installed('s3') ? ['offsite'] : [])].sort());
  });

  it('appears in no log at debug level and no command output, though the webhook\'s receiver echoed it back', () => {
    expect(echo.requests.length, 'the webhook was called (and refused)').toBeGreaterThan(0);
    expect(echo.requests[0]!.path).toContain(MARKER);
    expect(outputs[0]!.json().notifications).toEqual(expect.arrayContaining([expect.objectContaining({ channel: 'notify.hook', status: 'failed' })]));
    for (const o of outputs) {
      for (const m of MARKERS) {
        expect(o.stdout).not.toContain(m);
        expect(o.stderr).not.toContain(m);
      }
    }
  });

  it('appears in no manifest, history, alert body or any other file the tool wrote, nor in any object name', async () => {
    const files = (await filesUnder(work)).filter((f) => f !== path.join(work, '.sutazai-backuprc'));
    expect(files.some((f) => f.endsWith('manifest.json'))).toBe(true);
    expect(files.some((f) => f.startsWith(path.join(work, 'copy')))).toBe(true);
    const alerts = await fsp.readFile(path.join(work, 'alerts.jsonl'), 'utf8');
    expect(alerts.split('\n').filter(Boolean).map((l) => JSON.parse(l).report.status)).toEqual(['success', 'failed']);
    for (const file of files) {
      const st = await fsp.lstat(file);
      for (const m of MARKERS) {
        expect(file).not.toContain(m);
        if (st.isFile()) expect((await fsp.readFile(file)).includes(m), file).toBe(false);
      }
    }
    for (const mail of received) {
      expect(mail(), 'something was received (a mail for the failed run, objects in S3)').not.toMatch(/^(\[\])?$/);
      for (const m of MARKERS) expect(mail()).not.toContain(m);
    }
  });

  it('appears in no command line nor environment of the children, which did run; the database password only in pg_dump\'s and pg_restore\'s environment', () => {
    // Passphrase encryption runs in-process (no gpg child); pg_dump and pg_restore run when the
    // postgres plugin is installed, and get their password through their environment only.
    expect(children.length, 'child processes were seen').toBeGreaterThan(0);
    if (installed('postgres')) expect(children.some((c) => /\/pg_dump .*--snapshot=/.test(c.cmdline)), 'pg_dump was seen running').toBe(true);
    for (const c of children) {
      const environ = c.environ.join('\n');
      for (const m of MARKERS) expect(c.cmdline).not.toContain(m);
      expect(environ, c.cmdline).not.toContain(MARKER);
      // (their --version probes have no password at all)
      if (/\/pg_(dump|dumpall|restore) /.test(c.cmdline)) expect(c.environ.filter((e) => e.includes(PG_MARKER) && e !== `PGPASSWORD=${PG_MARKER}`)).toEqual([]);
      else expect(environ, c.cmdline).not.toContain(PG_MARKER);
    }
  });
});

describe('a webhook whose URL token and Cookie header are its only secrets', () => {
  // Each secret here is written once, in the place it is used, and nowhere else in the rc file:
  // nothing but the URL's and the headers' own rules can mask it.
  const token = `Tk${randomBytes(8).toString('hex')}`;
  const cookie = `Ck${randomBytes(8).toString('hex')}`;
  const bearer = `Br${randomBytes(8).toString('hex')}`;
  let work: string;
  let echo: HttpReceiver;

  beforeAll(async () => {
    work = await tempDir('sutazai-webhook-secrets-');
    echo = await startHttpReceiver(echoingReceiver(403, (req) => `forbidden: ${req.path} ${String(req.headers.cookie)} ${String(req.headers.authorization)}`).handler);
    await fsp.mkdir(path.join(work, 'src'));
    await fsp.writeFile(path.join(work, 'src', 'a.txt'), 'a\n');
    await writeRc(
      work,
      `backupRoot: ./backups
sources:
  configs: { use: files, paths: [./src] }
notify:
  hook:
    use: webhook
    on: [success, failure]
    url: "${echo.url}/in?channel=ops&access_token=${token}"
    headers: { Cookie: "sid=${cookie}", Authorization: "Bearer ${bearer}", X-Request-Source: backups }
`,
    );
  });
  afterAll(async () => {
    await echo.stop();
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('config show masks the token and the credential headers, and shows the rest', async () => {
    const show = await runCli(['config', 'show'], { cwd: work });
    expect(show.code, show.stderr).toBe(0);
    const hook = show.json().config.notify.hook;
    expect(hook.url).toBe(`${echo.url}/in?channel=ops&access_token=***`);
    expect(hook.headers).toEqual({ Cookie: '***', Authorization: '***', 'X-Request-Source': 'backups' });
    for (const s of [token, cookie, bearer]) expect(show.stdout + show.stderr).not.toContain(s);
  });

  it('a delivery the server refuses, echoing the request, is logged and reported without them', async () => {
    const run = await runCli(['run', '--json'], { cwd: work });
    expect(run.code, run.stderr).toBe(0);
    expect(echo.requests.at(-1)!.path).toContain(token);
    const failed = (run.json().notifications as { channel: string; status: string; error?: string }[]).find((n) => n.channel === 'notify.hook');
    expect(failed).toMatchObject({ status: 'failed' });
    expect(failed!.error).toMatch(/^webhook: HTTP 403: forbidden: \/in\?channel=ops&access_token=\*\*\* \*\*\* \*\*\*$/);
    for (const s of [token, cookie, bearer]) expect(run.stdout + run.stderr).not.toContain(s);
  });
});

describe('rc file permissions', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('sutazai-rc-perm-');
    await fsp.mkdir(path.join(work, 'src'));
  });
  afterAll(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('warns about literal secrets others can read; refuses them with strictPermissions', async () => {
    const rc = `backupRoot: ./backups\nencryption: { use: gpg, passphrase: "a literal passphrase" }\nsources:\n  configs: { use: files, paths: [./src] }\n`;
    const file = await writeRc(work, rc);
    await fsp.chmod(file, 0o644);
    let result = await runCli(['config', 'validate'], { cwd: work });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`${file} is readable by its group and everyone (mode 0644) and holds secrets in encryption.passphrase`);
    expect(result.stderr).not.toContain('a literal passphrase');

    await fsp.writeFile(file, `strictPermissions: true\n${rc}`);
    result = await runCli(['config', 'validate'], { cwd: work });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/strictPermissions is on/);

    await fsp.chmod(file, 0o600);
    result = await runCli(['config', 'validate'], { cwd: work });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/readable by/);
  });
});

describe('umask 000', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('sutazai-umask-');
    await writeTree(path.join(work, 'src'), { 'a.txt': 'a', sub: { 'b.txt': 'b' } });
    await writeRc(
      work,
      `backupRoot: ./backups\nencryption: { use: gpg, passphrase: "\${PW}" }\nsources:\n  configs: { use: files, paths: [./src] }\ndestinations:\n  copy: { use: local, path: ./copy }\n`,
    );
  });
  afterAll(async () => {
    await fsp.rm(work, { recursive: true, force: true });
  });

  const underUmask000 = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', 'umask 000; exec "$0" "$@"', process.execPath, CLI_BIN, ...args], {
        cwd: work,
        env: { ...process.env, PW: 'a passphrase for umask' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });

  it('everything the tool writes is 0600 / 0700', async () => {
    expect((await underUmask000(['run'])).code).toBe(0);
    const restore = await underUmask000(['restore', 'latest', '--to', './restored/deeper']);
    expect(restore.code, restore.stderr).toBe(0);
    const written = [path.join(work, 'backups'), path.join(work, 'copy')];
    let checked = 0;
    for (const root of written) {
      for (const p of [root, ...(await filesUnder(root))]) {
        const st = await fsp.lstat(p);
        expect([p, (st.mode & 0o777).toString(8)]).toEqual([p, st.isDirectory() ? '700' : '600']);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(6);
    // The folders a restore makes; the tree inside keeps the modes it was backed up with.
    for (const dir of ['restored', 'restored/deeper', 'restored/deeper/configs']) {
      expect(((await fsp.stat(path.join(work, dir))).mode & 0o777).toString(8), dir).toBe('700');
    }
  });
});

/**
 * Real servers on loopback for integration tests: PostgreSQL, OpenSSH (sshd with sftp), S3
 * (s3rver), SMTP (smtp-server) and a plain HTTP receiver.
 *
 * Every server listens on 127.0.0.1 on a free random port and keeps everything under a fresh temp
 * folder. `stop()` kills it and removes the folder; it is also run when the test process exits, so
 * a forgotten stop() leaks nothing. The system programs come from `node scripts/ensure-test-deps.mjs`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';

// ---------------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------------

export const LOOPBACK = '127.0.0.1';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Clean-up of servers nobody stopped, two ways:
 * - a synchronous hook on the test process's 'exit' event;
 * - a small watchdog process (one per test process) that holds a pipe to us: when the pipe closes,
 *   however we died (vitest kills its workers with a signal, which skips 'exit'; SIGKILL skips
 *   everything), it signals the servers still registered and removes their folders.
 */
const exitHooks = new Set<() => void>();
let exitHookInstalled = false;

const WATCHDOG_SOURCE = `
const fs = require('fs');
const entries = new Map();
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) process.on(s, () => {});
const alive = (pid) => {
  try { const st = fs.readFileSync('/proc/' + pid + '/stat', 'utf8'); return st[st.lastIndexOf(')') + 2] !== 'Z'; }
  catch { return false; }
};
const descendants = (root) => {
  const kids = new Map();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync('/proc/' + e + '/stat', 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(e));
    } catch {}
  }
  const out = []; const q = [root];
  while (q.length) for (const c of kids.get(q.shift()) || []) { out.push(c); q.push(c); }
  return out;
};
const kill = (pid, sig) => { try { process.kill(pid, sig); } catch {} };
async function clean(e) {
  if (e.pid) {
    const tree = e.killTree ? descendants(e.pid) : [];
    kill(e.pid, e.signal || 'SIGTERM');
    for (let i = 0; i < 150 && alive(e.pid); i++) await new Promise((r) => setTimeout(r, 20));
    for (const p of [e.pid, ...tree]) kill(p, 'SIGKILL');
  }
  if (e.dir) { try { fs.rmSync(e.dir, { recursive: true, force: true, maxRetries: 3 }); } catch {} }
}
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    try { const m = JSON.parse(line); if (m.op === 'del') entries.delete(m.id); else entries.set(m.id, m); } catch {}
  }
});
const finish = () => Promise.all([...entries.values()].map(clean)).finally(() => process.exit(0));
process.stdin.on('end', finish);
process.stdin.on('error', finish);
`;

let watchdog: ChildProcess | undefined | null;

function watchdogSend(message: Record<string, unknown>): void {
  if (watchdog === undefined) {
    try {
      watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
      watchdog.on('error', () => (watchdog = null));
      watchdog.stdin?.on('error', () => undefined);
      watchdog.unref();
      (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    } catch {
      watchdog = null;
    }
  }
  if (watchdog?.stdin?.writable) watchdog.stdin.write(`${JSON.stringify(message)}\n`);
}

interface Guard {
  /** The server's (current) process id, for the watchdog. */
  setPid(pid: number | undefined): void;
  /** The server was stopped properly: forget it. */
  release(): void;
}

let nextGuardId = 1;

function guard(spec: { dir: string; signal?: NodeJS.Signals; killTree?: boolean; onExit: () => void }): Guard {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const fn of [...exitHooks]) {
        try {
          fn();
        } catch {
          // best effort: the process is going away
        }
      }
    });
  }
  const id = nextGuardId++;
  const hook = spec.onExit;
  exitHooks.add(hook);
  const entry = { op: 'add', id, dir: spec.dir, signal: spec.signal ?? 'SIGTERM', killTree: spec.killTree ?? false };
  watchdogSend(entry);
  return {
    setPid: (pid) => watchdogSend({ ...entry, pid }),
    release: () => {
      exitHooks.delete(hook);
      watchdogSend({ op: 'del', id });
    },
  };
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sutazai-${prefix}-`));
}

function removeDirSync(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}

/** Keeps the last `max` characters of a stream (a server's stderr) for error messages. */
class OutputTail {
  private text = '';
  constructor(private readonly max = 8192) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    const t = this.text.slice(-this.max).trimEnd();
    return t === '' ? '(no output)' : t;
  }
  includes(s: string): boolean {
    return this.text.includes(s);
  }
}

interface PosixUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function lookupUser(name: string): PosixUser | undefined {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const fields = r.stdout.trim().split(':');
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { name, uid, gid, home: fields[5] ?? '/' };
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** Runs a program to completion; rejects with its stderr when it fails. */
function runCommand(cmd: string, args: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolve({ stdout, stderr });
      else {
        const e = new Error(
          `${cmd} ${args.join(' ')} failed (${signal ?? `exit code ${code}`}):\n${stderr.trimEnd() || stdout.trimEnd()}`,
        ) as Error & { stdout: string; stderr: string; exitCode: number | null };
        e.stdout = stdout;
        e.stderr = stderr;
        e.exitCode = code;
        reject(e);
      }
    });
    child.stdin.on('error', () => {
      // the program may exit without reading its input
    });
    child.stdin.end(opts.input ?? '');
  });
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Sends `signal`, then SIGKILL if the process is still there after `graceMs`. */
async function terminate(child: ChildProcess, signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  if (await waitForExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitForExit(child, 5_000);
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('could not get a free port'));
      });
    });
  });
}

/** Resolves when a TCP connection to host:port succeeds (or rejects after timeoutMs). */
async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: LOOPBACK, port });
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${LOOPBACK}:${port} after ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Child processes of `pid`, recursively (from /proc). */
function descendantPids(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function processAlive(pid: number): boolean {
  try {
    // A zombie still has /proc/<pid>; its state is Z.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitForPidsGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(processAlive) && Date.now() < deadline) await sleep(20);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

export interface PostgresOptions {
  /** Folder with initdb/postgres/psql; default: $SUTAZAI_PG_BIN, else /usr/lib/postgresql/15/bin, else the newest installed. */
  binDir?: string;
  /** Password of the `postgres` superuser; default: random. */
  password?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number | boolean>;
  /** Milliseconds to wait for the server to accept connections; default 30 s. */
  startTimeoutMs?: number;
}

export interface PostgresServer {
  host: string;
  port: number;
  user: 'postgres';
  password: string;
  /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  url: string;
  /** Folder of the server's programs (pg_dump, pg_restore, psql, ... of the same version). */
  binDir: string;
  /** PGHOST, PGPORT, PGUSER, PGPASSWORD: merge into a child's env to point psql-like tools here. */
  env: { PGHOST: string; PGPORT: string; PGUSER: string; PGPASSWORD: string };
  /** The temp folder (data directory in `data/`, unix socket in `sock/`). */
  dir: string;
  dataDir: string;
  /** url for another database on this server. */
  urlFor(database: string): string;
  /**
   * Runs SQL (any psql script, fed on stdin) with `psql -X -q -t -A -v ON_ERROR_STOP=1` and returns
   * its stdout: unaligned rows, columns separated by `|`, no headers. Rejects with psql's stderr.
   */
  psql(sql: string, db?: string): Promise<string>;
  /** Shuts the server down (fast shutdown) but keeps its data: `start` brings it back on the same port. */
  halt(): Promise<void>;
  /** Starts a halted server again and waits until it accepts connections. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

function findPgBinDir(explicit?: string): string {
  const candidates = [explicit, process.env.SUTAZAI_PG_BIN, '/usr/lib/postgresql/15/bin'].filter(
    (d): d is string => typeof d === 'string' && d !== '',
  );
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'initdb'))) return dir;
  }
  if (explicit) throw new Error(`no initdb in ${explicit}`);
  try {
    const versions = fs
      .readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = `/usr/lib/postgresql/${v}/bin`;
      if (fs.existsSync(path.join(dir, 'initdb'))) return dir;
    }
  } catch {
    // no /usr/lib/postgresql
  }
  throw new Error('PostgreSQL server programs not found (no /usr/lib/postgresql/15/bin/initdb): run `node scripts/ensure-test-deps.mjs`');
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  const binDir = findPgBinDir(opts.binDir);
  const password = opts.password ?? randomBytes(12).toString('hex');
  let owner: PosixUser | undefined;
  if (isRoot) {
    owner = lookupUser('postgres');
    if (!owner) throw new Error('startPostgres: initdb refuses to run as root and there is no `postgres` user: run `node scripts/ensure-test-deps.mjs`');
  }
  const dir = makeTempDir('pg');
  let child: ChildProcess | undefined;
  const guarded = guard({
    dir,
    // Immediate shutdown (SIGQUIT) releases shared memory; give it a moment, then remove the folder.
    signal: 'SIGQUIT',
    killTree: true,
    onExit: () => {
      if (child && child.exitCode === null && child.signalCode === null && child.pid) {
        killQuietly(child.pid, 'SIGQUIT');
        const pidFile = path.join(dir, 'data', 'postmaster.pid');
        for (let i = 0; i < 100 && fs.existsSync(pidFile); i++) sleepSync(20);
        killQuietly(child.pid, 'SIGKILL');
      }
      removeDirSync(dir);
    },
  });
  const fail = async (err: unknown): Promise<never> => {
    if (child) await terminate(child, 'SIGQUIT', 3_000);
    guarded.release();
    removeDirSync(dir);
    throw err;
  };

  const dataDir = path.join(dir, 'data');
  const sockDir = path.join(dir, 'sock');
  const pwFile = path.join(dir, 'pwfile');
  const ids = owner ? { uid: owner.uid, gid: owner.gid } : {};
  const childEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir, LANG: 'C', LC_ALL: 'C', TZ: 'UTC' };
  try {
    fs.mkdirSync(sockDir, { mode: 0o700 });
    fs.writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    if (owner) {
      for (const p of [dir, sockDir, pwFile]) fs.chownSync(p, owner.uid, owner.gid);
    }
    await runCommand(
      path.join(binDir, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      { ...ids, cwd: dir, env: childEnv },
    ).catch((e: Error) => {
      throw new Error(`startPostgres: initdb failed: ${e.message}`);
    });
    fs.rmSync(pwFile, { force: true });
  } catch (e) {
    return fail(e);
  }

  const settings: Record<string, string | number | boolean> = {
    listen_addresses: LOOPBACK,
    unix_socket_directories: sockDir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: 100,
    shared_buffers: '32MB',
    max_wal_senders: 4,
    wal_level: 'replica',
    logging_collector: 'off',
    log_min_messages: 'warning',
    ...opts.settings,
  };
  const settingArgs = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${String(v)}`]);
  const timeoutMs = opts.startTimeoutMs ?? 30_000;

  let port = 0;
  let stderr = new OutputTail();
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    stderr = new OutputTail();
    const proc = spawn(path.join(binDir, 'postgres'), ['-D', dataDir, '-p', String(port), ...settingArgs], {
      ...ids,
      cwd: dir,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    guarded.setPid(proc.pid);
    const errTail = stderr;
    proc.stdout?.on('data', (b: Buffer) => errTail.push(b));
    proc.stderr?.on('data', (b: Buffer) => errTail.push(b));
    let spawnError: Error | undefined;
    proc.on('error', (e) => (spawnError = e));

    const deadline = Date.now() + timeoutMs;
    let ready = false;
    let lastError = '';
    while (!ready) {
      if (spawnError) return fail(new Error(`startPostgres: could not run postgres: ${spawnError.message}`));
      if (proc.exitCode !== null || proc.signalCode !== null) break;
      if (Date.now() > deadline) {
        return fail(new Error(`startPostgres: the server did not accept connections within ${timeoutMs} ms (last error: ${lastError}). Server output:\n${stderr}`));
      }
      const client = new pg.Client({ host: LOOPBACK, port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 2_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('select 1');
        ready = true;
      } catch (e) {
        const err = e as Error & { code?: string };
        lastError = `${err.code ?? ''} ${err.message}`.trim();
        if (err.code === '28P01' || err.code === '28000') {
          return fail(new Error(`startPostgres: the server rejected the password it was created with: ${err.message}. Server output:\n${stderr}`));
        }
        await sleep(40);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    if (ready) break;
    // The server exited: most likely someone else took the port between freePort() and bind().
    await waitForExit(proc, 2_000);
    if (attempt < 4 && (stderr.includes('could not bind') || stderr.includes('already in use'))) continue;
    return fail(new Error(`startPostgres: postgres exited (${proc.signalCode ?? `code ${proc.exitCode}`}) before accepting connections. Server output:\n${stderr}`));
  }

  let running = child;
  const spawnArgs = ['-D', dataDir, '-p', String(port), ...settingArgs];
  const url = `postgres://postgres:${encodeURIComponent(password)}@${LOOPBACK}:${port}/postgres`;
  const env = { PGHOST: LOOPBACK, PGPORT: String(port), PGUSER: 'postgres', PGPASSWORD: password };
  let stopping: Promise<void> | undefined;
  return {
    host: LOOPBACK,
    port,
    user: 'postgres',
    password,
    url,
    binDir,
    env,
    dir,
    dataDir,
    urlFor: (database) => `postgres://postgres:${encodeURIComponent(password)}@${LOOPBACK}:${port}/${encodeURIComponent(database)}`,
    async psql(sql, db = 'postgres') {
      const psqlBin = fs.existsSync(path.join(binDir, 'psql')) ? path.join(binDir, 'psql') : 'psql';
      const { stdout } = await runCommand(psqlBin, ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-d', db, '-f', '-'], {
        env: { ...process.env, ...env },
        input: sql,
      });
      return stdout;
    },
    async halt() {
      await terminate(running, 'SIGINT', 10_000);
    },
    async start() {
      const proc = spawn(path.join(binDir, 'postgres'), spawnArgs, { ...ids, cwd: dir, env: childEnv, stdio: ['ignore', 'ignore', 'ignore'] });
      running = child = proc;
      guarded.setPid(proc.pid);
      for (const deadline = Date.now() + timeoutMs; ; ) {
        if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`startPostgres: the restarted server did not accept connections (exit ${proc.exitCode})`);
        const client = new pg.Client({ host: LOOPBACK, port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 2_000 });
        client.on('error', () => undefined);
        const up = await client.connect().then(() => true, () => false);
        await client.end().catch(() => undefined);
        if (up) return;
        await sleep(40);
      }
    },
    stop() {
      stopping ??= (async () => {
        // SIGINT = "fast" shutdown: disconnects clients, then exits cleanly.
        await terminate(running, 'SIGINT', 10_000);
        guarded.release();
        removeDirSync(dir);
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// OpenSSH
// ---------------------------------------------------------------------------------------------

export interface SshdOptions {
  /**
   * The login user; default: the user running the tests (root in CI, allowed with
   * PermitRootLogin). Another user (e.g. `sutazai-test`) needs root, and its account must not be
   * locked ('!' in /etc/shadow) because sshd runs with `UsePAM no`.
   */
  user?: string;
  /** Extra sshd_config lines. */
  extraConfig?: string[];
  startTimeoutMs?: number;
}

export interface SshServer {
  host: string;
  port: number;
  user: string;
  /** Unencrypted ed25519 client key (OpenSSH format); its .pub is next to it. */
  privateKeyPath: string;
  /** A second ed25519 client key, encrypted with `keyPassphrase`. */
  encryptedKeyPath: string;
  keyPassphrase: string;
  /** Current host key (changes on rotateHostKey()). */
  hostKeyPath: string;
  /** e.g. "ssh-ed25519 AAAA..." (changes on rotateHostKey()). */
  hostPublicKey: string;
  /** "SHA256:..." as `ssh-keygen -lf` prints it (changes on rotateHostKey()). */
  hostKeyFingerprint: string;
  /** known_hosts with one line for [127.0.0.1]:<port>, holding the key the server started with (not updated by rotateHostKey()). */
  knownHostsPath: string;
  /** A folder on the "remote" side the login user can write (absolute path; the user's real home is not changed). */
  homeDir: string;
  /** The temp folder holding keys, config and homeDir. */
  dir: string;
  /**
   * Arguments for the OpenSSH client (ssh, or rsync's `-e "ssh ..."`): port, key, this known_hosts
   * with StrictHostKeyChecking=yes, BatchMode, no user config. Append `user@127.0.0.1 command`.
   */
  sshArgs: string[];
  /** The server's stderr so far (last few KB). */
  logs(): string;
  /** Restarts sshd on the same port with a freshly generated host key. */
  rotateHostKey(): Promise<void>;
  /** Kills the per-connection sshd processes (and their sessions); the listener stays up. Returns how many processes were killed. */
  dropConnections(): Promise<number>;
  stop(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';

function opensshVersion(): [number, number] {
  const r = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  const m = /OpenSSH_(\d+)\.(\d+)/.exec(`${r.stderr}${r.stdout}`);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

async function sshKeygen(args: string[]): Promise<string> {
  const { stdout } = await runCommand('ssh-keygen', args);
  return stdout;
}

export async function startSshd(opts: SshdOptions = {}): Promise<SshServer> {
  if (!fs.existsSync(SSHD)) throw new Error(`startSshd: ${SSHD} not found: run \`node scripts/ensure-test-deps.mjs\``);
  const me = os.userInfo().username;
  const user = opts.user ?? me;
  let login: PosixUser | undefined;
  if (user !== me) {
    if (!isRoot) throw new Error(`startSshd: logging in as ${user} needs the tests to run as root`);
    login = lookupUser(user);
    if (!login) throw new Error(`startSshd: no user ${user}: run \`node scripts/ensure-test-deps.mjs\``);
  }
  if (isRoot) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = makeTempDir('sshd');
  let child: ChildProcess | undefined;
  const guarded = guard({
    dir,
    signal: 'SIGTERM',
    killTree: true,
    onExit: () => {
      if (child?.pid) {
        for (const pid of descendantPids(child.pid)) killQuietly(pid, 'SIGKILL');
        killQuietly(child.pid, 'SIGKILL');
      }
      removeDirSync(dir);
    },
  });
  const cleanupAfterFailure = async () => {
    if (child) await terminate(child, 'SIGKILL', 2_000);
    guarded.release();
    removeDirSync(dir);
  };

  try {
    // Another login user must be able to reach authorized_keys (sshd reads it as that user) and homeDir.
    if (login) fs.chmodSync(dir, 0o755);
    const privateKeyPath = path.join(dir, 'id_ed25519');
    const encryptedKeyPath = path.join(dir, 'id_ed25519_encrypted');
    const keyPassphrase = `pass-${randomBytes(6).toString('hex')}`;
    let hostKeyPath = path.join(dir, 'ssh_host_ed25519_key');
    await Promise.all([
      sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'sutazai-test-client', '-f', privateKeyPath]),
      sshKeygen(['-q', '-t', 'ed25519', '-N', keyPassphrase, '-C', 'sutazai-test-client-encrypted', '-f', encryptedKeyPath]),
      sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', 'sutazai-test-host', '-f', hostKeyPath]),
    ]);
    const authorizedKeys = path.join(dir, 'authorized_keys');
    fs.writeFileSync(
      authorizedKeys,
      fs.readFileSync(`${privateKeyPath}.pub`, 'utf8') + fs.readFileSync(`${encryptedKeyPath}.pub`, 'utf8'),
      { mode: 0o644 },
    );
    const homeDir = path.join(dir, 'home');
    fs.mkdirSync(homeDir, { mode: 0o755 });
    if (login) fs.chownSync(homeDir, login.uid, login.gid);

    const hostKeyInfo = async (keyPath: string) => {
      const pub = fs.readFileSync(`${keyPath}.pub`, 'utf8').trim().split(/\s+/);
      const fp = (await sshKeygen(['-l', '-E', 'sha256', '-f', `${keyPath}.pub`])).trim().split(/\s+/)[1] ?? '';
      return { publicKey: `${pub[0]} ${pub[1]}`, fingerprint: fp };
    };

    const [major, minor] = opensshVersion();
    const configPath = path.join(dir, 'sshd_config');
    const writeConfig = (port: number, hostKey: string) => {
      const lines = [
        `Port ${port}`,
        `ListenAddress ${LOOPBACK}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        'UsePAM no',
        'StrictModes no',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        `PermitRootLogin ${user === 'root' ? 'prohibit-password' : 'no'}`,
        `AllowUsers ${user}`,
        'Subsystem sftp internal-sftp',
        'UseDNS no',
        'PrintMotd no',
        'PrintLastLog no',
        'LogLevel INFO',
        'LoginGraceTime 30',
        'MaxStartups 200:30:400',
        'MaxSessions 50',
        'MaxAuthTries 20',
        // OpenSSH >= 9.8 would lock 127.0.0.1 out after the failed logins that tests provoke.
        ...(major > 9 || (major === 9 && minor >= 8) ? ['PerSourcePenalties no'] : []),
        ...(opts.extraConfig ?? []),
      ];
      fs.writeFileSync(configPath, `${lines.join('\n')}\n`, { mode: 0o644 });
    };

    const timeoutMs = opts.startTimeoutMs ?? 15_000;
    let stderr = new OutputTail();
    /** Starts sshd on `port`; resolves false if the port was taken. */
    const launch = async (port: number, hostKey: string): Promise<boolean> => {
      writeConfig(port, hostKey);
      stderr = new OutputTail();
      const errTail = stderr;
      const proc = spawn(SSHD, ['-D', '-e', '-f', configPath], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      guarded.setPid(proc.pid);
      proc.stdout?.on('data', (b: Buffer) => errTail.push(b));
      let spawnError: Error | undefined;
      proc.on('error', (e) => (spawnError = e));
      const deadline = Date.now() + timeoutMs;
      const listening = `Server listening on ${LOOPBACK} port ${port}`;
      await new Promise<void>((resolve) => {
        const check = () => {
          if (errTail.includes(listening) || spawnError || proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
            proc.stderr?.off('data', onData);
            proc.off('exit', check);
            clearInterval(timer);
            resolve();
          }
        };
        const onData = (b: Buffer) => {
          errTail.push(b);
          check();
        };
        proc.stderr?.on('data', onData);
        proc.on('exit', check);
        const timer = setInterval(check, 50);
      });
      // keep draining stderr so the per-connection processes never block on a full pipe
      proc.stderr?.on('data', (b: Buffer) => errTail.push(b));
      if (spawnError) throw new Error(`startSshd: could not run ${SSHD}: ${spawnError.message}`);
      if (errTail.includes(listening)) {
        await waitForPort(port, 5_000);
        return true;
      }
      if (proc.exitCode === null && proc.signalCode === null) {
        await terminate(proc, 'SIGKILL', 2_000);
        throw new Error(`startSshd: sshd did not start listening within ${timeoutMs} ms. sshd output:\n${errTail}`);
      }
      await waitForExit(proc, 2_000);
      if (errTail.includes('Address already in use') || errTail.includes('Cannot bind any address')) return false;
      throw new Error(`startSshd: sshd exited (${proc.signalCode ?? `code ${proc.exitCode}`}). sshd output:\n${errTail}`);
    };

    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      if (await launch(port, hostKeyPath)) break;
      if (attempt >= 4) throw new Error(`startSshd: could not bind a port after ${attempt} tries. sshd output:\n${stderr}`);
    }

    const first = await hostKeyInfo(hostKeyPath);
    const knownHostsPath = path.join(dir, 'known_hosts');
    fs.writeFileSync(knownHostsPath, `[${LOOPBACK}]:${port} ${first.publicKey}\n`, { mode: 0o644 });

    let rotations = 0;
    let stopping: Promise<void> | undefined;
    const server: SshServer = {
      host: LOOPBACK,
      port,
      user,
      privateKeyPath,
      encryptedKeyPath,
      keyPassphrase,
      hostKeyPath,
      hostPublicKey: first.publicKey,
      hostKeyFingerprint: first.fingerprint,
      knownHostsPath,
      homeDir,
      dir,
      sshArgs: [
        '-F', '/dev/null',
        '-p', String(port),
        '-i', privateKeyPath,
        '-o', 'IdentitiesOnly=yes',
        '-o', `UserKnownHostsFile=${knownHostsPath}`,
        '-o', 'GlobalKnownHostsFile=/dev/null',
        '-o', 'StrictHostKeyChecking=yes',
        '-o', 'BatchMode=yes',
        '-o', 'ConnectTimeout=10',
        '-o', 'LogLevel=ERROR',
      ],
      logs: () => stderr.toString(),
      async rotateHostKey() {
        rotations += 1;
        const newKey = path.join(dir, `ssh_host_ed25519_key_${rotations}`);
        await sshKeygen(['-q', '-t', 'ed25519', '-N', '', '-C', `sutazai-test-host-${rotations}`, '-f', newKey]);
        if (child) await terminate(child, 'SIGTERM', 5_000);
        let ok = false;
        for (let i = 0; i < 20 && !ok; i++) {
          ok = await launch(port, newKey);
          if (!ok) await sleep(100);
        }
        if (!ok) throw new Error(`rotateHostKey: port ${port} stayed busy. sshd output:\n${stderr}`);
        const info = await hostKeyInfo(newKey);
        server.hostKeyPath = newKey;
        server.hostPublicKey = info.publicKey;
        server.hostKeyFingerprint = info.fingerprint;
      },
      async dropConnections() {
        if (!child?.pid) return 0;
        const pids = descendantPids(child.pid);
        for (const pid of pids) killQuietly(pid, 'SIGKILL');
        await waitForPidsGone(pids, 3_000);
        return pids.length;
      },
      stop() {
        stopping ??= (async () => {
          if (child?.pid) {
            const pids = descendantPids(child.pid);
            await terminate(child, 'SIGTERM', 5_000);
            for (const pid of pids) killQuietly(pid, 'SIGKILL');
            await waitForPidsGone(pids, 3_000);
          }
          guarded.release();
          removeDirSync(dir);
        })();
        return stopping;
      },
    };
    return server;
  } catch (e) {
    await cleanupAfterFailure();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// S3 (s3rver)
// ---------------------------------------------------------------------------------------------

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  httpServer?: HttpServer;
  store: { putBucket(name: string): Promise<unknown> };
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;

const requireCjs = createRequire(import.meta.url);

export interface S3Options {
  /** Buckets to create before the server starts. */
  buckets?: string[];
}

export interface S3Server {
  /** http://127.0.0.1:<port> (use with forcePathStyle: true). */
  endpoint: string;
  host: string;
  port: number;
  region: 'us-east-1';
  accessKeyId: 'S3RVER';
  secretAccessKey: 'S3RVER';
  /** Where s3rver keeps buckets and objects. */
  directory: string;
  createBucket(name: string): Promise<void>;
  /** Closes the listening socket and destroys every open connection (uploads in flight fail); data is kept. */
  pause(): Promise<void>;
  /** Listens again on the same port after pause(). */
  resume(): Promise<void>;
  /** pause(), wait `downMs` (default 0), resume(). */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3(opts: S3Options = {}): Promise<S3Server> {
  const S3rver = requireCjs('s3rver') as S3rverConstructor;
  const dir = makeTempDir('s3');
  const directory = path.join(dir, 'data');
  fs.mkdirSync(directory);
  const guarded = guard({ dir, onExit: () => removeDirSync(dir) });

  let instance: S3rverInstance | undefined;
  const sockets = new Set<net.Socket>();
  let port = 0;

  const listen = async (p: number, buckets: string[]) => {
    const s3 = new S3rver({
      address: LOOPBACK,
      port: p,
      silent: true,
      directory,
      resetOnClose: false,
      configureBuckets: buckets.map((name) => ({ name })),
    });
    const addr = await s3.run();
    s3.httpServer?.on('connection', (sock: net.Socket) => {
      sockets.add(sock);
      sock.once('close', () => sockets.delete(sock));
    });
    instance = s3;
    return addr.port;
  };
  const close = async () => {
    const s3 = instance;
    instance = undefined;
    if (!s3?.httpServer) return;
    const closed = s3.close().catch(() => undefined);
    s3.httpServer.closeAllConnections();
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    await closed;
  };

  try {
    port = await listen(0, opts.buckets ?? []);
  } catch (e) {
    guarded.release();
    removeDirSync(dir);
    throw new Error(`startS3: s3rver did not start: ${(e as Error).message}`);
  }

  let stopping: Promise<void> | undefined;
  const server: S3Server = {
    endpoint: `http://${LOOPBACK}:${port}`,
    host: LOOPBACK,
    port,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    directory,
    async createBucket(name) {
      if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) throw new Error(`createBucket: invalid bucket name ${JSON.stringify(name)} (3-63 chars, a-z 0-9 . -)`);
      fs.mkdirSync(path.join(directory, name), { recursive: true, mode: 0o755 });
    },
    pause: close,
    async resume() {
      if (instance) return;
      let lastError: unknown;
      for (let i = 0; i < 20; i++) {
        try {
          await listen(port, []);
          return;
        } catch (e) {
          lastError = e;
          await sleep(100);
        }
      }
      throw new Error(`S3 resume: could not listen on ${port} again: ${(lastError as Error).message}`);
    },
    async restart(downMs = 0) {
      await server.pause();
      if (downMs > 0) await sleep(downMs);
      await server.resume();
    },
    stop() {
      stopping ??= (async () => {
        await close();
        guarded.release();
        removeDirSync(dir);
      })();
      return stopping;
    },
  };
  return server;
}

// ---------------------------------------------------------------------------------------------
// SMTP (smtp-server)
// ---------------------------------------------------------------------------------------------

export interface SmtpOptions {
  /** Require AUTH (PLAIN/LOGIN): true for a generated user/password, or the credentials to accept. */
  auth?: boolean | { user: string; password: string };
  /** Implicit TLS (smtps) with smtp-server's built-in self-signed certificate; default false. */
  secure?: boolean;
  /** Advertise STARTTLS (self-signed certificate); default false: plain SMTP only. */
  starttls?: boolean;
  /** Reject messages larger than this many bytes. */
  size?: number;
  /** Refuse every recipient with this reply text (code 550), as a server that echoes too much might. */
  rejectRecipients?: (creds: { user: string; password: string } | undefined) => string;
}

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The message source as received (headers and body, CRLF line ends). */
  raw: string;
}

export interface SmtpTestServer {
  host: string;
  port: number;
  /** smtp://127.0.0.1:<port> (with user:password when auth is on). */
  url: string;
  user?: string;
  password?: string;
  messages: ReceivedMail[];
  /** Resolves when at least `count` messages arrived. */
  waitForMessages(count?: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  stop(): Promise<void>;
}

export async function startSmtp(opts: SmtpOptions = {}): Promise<SmtpTestServer> {
  const creds =
    opts.auth === true
      ? { user: 'sutazai', password: randomBytes(9).toString('hex') }
      : typeof opts.auth === 'object'
        ? opts.auth
        : undefined;
  const messages: ReceivedMail[] = [];
  const secure = opts.secure ?? false;
  const server = new SMTPServer({
    secure,
    logger: false,
    banner: 'sutazai test SMTP',
    authOptional: !creds,
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: true,
    disabledCommands: [...(opts.starttls || secure ? [] : ['STARTTLS']), ...(creds ? [] : ['AUTH'])],
    size: opts.size,
    onAuth(auth, _session, callback) {
      if (creds && auth.username === creds.user && auth.password === creds.password) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onRcptTo(_address, _session, callback) {
      if (!opts.rejectRecipients) return callback();
      const err = new Error(opts.rejectRecipients(creds)) as Error & { responseCode: number };
      err.responseCode = 550;
      callback(err);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (b: Buffer) => chunks.push(b));
      stream.on('end', () => {
        const tooBig = (stream as unknown as { sizeExceeded?: boolean }).sizeExceeded;
        if (tooBig) {
          const err = new Error('Message exceeds fixed maximum message size') as Error & { responseCode: number };
          err.responseCode = 552;
          callback(err);
          return;
        }
        const mailFrom = session.envelope.mailFrom;
        messages.push({
          from: mailFrom ? mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  const port = await new Promise<number>((resolve, reject) => {
    const onError = (e: Error) => reject(new Error(`startSmtp: could not listen: ${e.message}`));
    server.server.once('error', onError);
    server.listen(0, LOOPBACK, () => {
      server.server.off('error', onError);
      const addr = server.server.address();
      if (addr && typeof addr === 'object') resolve(addr.port);
      else reject(new Error('startSmtp: no address'));
    });
  });

  let stopping: Promise<void> | undefined;
  const userInfo = creds ? `${encodeURIComponent(creds.user)}:${encodeURIComponent(creds.password)}@` : '';
  return {
    host: LOOPBACK,
    port,
    url: `${secure ? 'smtps' : 'smtp'}://${userInfo}${LOOPBACK}:${port}`,
    ...(creds ? { user: creds.user, password: creds.password } : {}),
    messages,
    async waitForMessages(count = 1, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`waitForMessages: ${messages.length} of ${count} messages after ${timeoutMs} ms`);
        await sleep(20);
      }
      return messages;
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // smtp-server waits for clients to quit; don't let a test hang on it
        setTimeout(resolve, 2_000).unref();
      });
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP receiver (webhooks, Slack, Twilio, ...)
// ---------------------------------------------------------------------------------------------

export interface RecordedRequest {
  method: string;
  /** Path with query string, as sent. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Body decoded as UTF-8. */
  body: string;
  rawBody: Buffer;
}

export interface HttpReply {
  status?: number;
  headers?: Record<string, string>;
  /** A string or Buffer is sent as is; anything else as JSON. */
  body?: unknown;
  /** Wait this long before answering (for timeout tests). */
  delayMs?: number;
}

export type HttpHandler = (req: RecordedRequest) => HttpReply | void | Promise<HttpReply | void>;

export interface HttpReceiver {
  host: string;
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  requests: RecordedRequest[];
  waitForRequests(count?: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  stop(): Promise<void>;
}

export async function startHttpReceiver(handler?: HttpHandler): Promise<HttpReceiver> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: req.headers,
        body: rawBody.toString('utf8'),
        rawBody,
      };
      requests.push(recorded);
      void (async () => {
        try {
          const reply = (handler ? await handler(recorded) : undefined) ?? {};
          if (reply.delayMs) await sleep(reply.delayMs);
          let body: string | Buffer;
          const headers: Record<string, string> = { ...reply.headers };
          if (reply.body === undefined) body = 'ok';
          else if (typeof reply.body === 'string' || Buffer.isBuffer(reply.body)) body = reply.body;
          else {
            body = JSON.stringify(reply.body);
            if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
          }
          res.writeHead(reply.status ?? 200, headers);
          res.end(body);
        } catch (e) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`handler failed: ${(e as Error).message}`);
        }
      })();
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const addr = server.address();
      if (addr && typeof addr === 'object') resolve(addr.port);
      else reject(new Error('startHttpReceiver: no address'));
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    host: LOOPBACK,
    port,
    url: `http://${LOOPBACK}:${port}`,
    requests,
    async waitForRequests(count = 1, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < count) {
        if (Date.now() > deadline) throw new Error(`waitForRequests: ${requests.length} of ${count} requests after ${timeoutMs} ms`);
        await sleep(20);
      }
      return requests;
    },
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}

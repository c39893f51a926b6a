import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BackupError,
  checkKey,
  defineDestination,
  expandHome,
  launchChild,
  z,
  type ChildEnv,
  type ChildOutcome,
  type LaunchedChild,
  type Destination,
  type Logger,
  type ObjectInfo,
  type PutInfo,
} from '@sutazai/backup-core';

/** Where rsync keeps what an interrupted transfer received, beside the file (lets the next try resume). */
const PARTIAL_DIR = '.rsync-partial';
/** rsync's temporary files, at the root: a killed receiver leaves its half file here, never beside the final one. */
const TEMP_DIR = '.rsync-tmp';
const STALE_TEMP_MINUTES = 360;

export const rsyncOptions = z
  .object({
    /** A local folder (`/mnt/nas/backups`) or `user@host:path` over ssh (a relative path starts at the login folder). */
    target: z.string().min(1),
    /** The rsync program. */
    rsync: z.string().min(1).default('rsync'),
    /** The ssh program (for `user@host:path` targets). */
    ssh: z.string().min(1).default('ssh'),
    port: z.number().int().min(1).max(65535).default(22),
    /** A private key file, or the key itself (e.g. `${BACKUP_SSH_KEY}`); default: ssh's own keys and agent. */
    privateKey: z.string().min(1).optional(),
    passphrase: z.string().min(1).optional(),
    /** known_hosts file; default ssh's (~/.ssh/known_hosts). Host keys are always checked strictly. */
    knownHosts: z.string().min(1).optional(),
    /** Seconds to wait for the ssh connection; rsync's I/O timeout is ten times this. */
    connectTimeout: z.number().int().positive().default(20),
    /** Large uploads are written here first (rsync sends files); default: backupRoot's staging folder. */
    spoolDir: z.string().min(1).optional(),
    /** For 3-2-1 accounting; default: remote-server and off site over ssh, local-disk and not off site for a local folder. */
    medium: z.enum(['local-disk', 'external-disk', 'network-share', 'remote-server']).optional(),
    offsite: z.boolean().optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    const remote = parseTarget(o.target).remote;
    if (!remote) {
      for (const k of ['privateKey', 'passphrase', 'knownHosts'] as const) {
        if (o[k]) ctx.addIssue({ code: 'custom', path: [k], message: `${k} only applies to a user@host:path target` });
      }
    }
    if (o.passphrase && !o.privateKey) ctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'a passphrase needs a privateKey' });
  });

export type RsyncOptions = z.input<typeof rsyncOptions>;
type ParsedRsyncOptions = z.output<typeof rsyncOptions>;

export interface RsyncTarget {
  /** `user@host` (or `host`) for ssh targets. */
  remote?: { login: string; host: string };
  /** The folder on that side, without a trailing slash (`.` for a remote login folder). */
  root: string;
}

/** Splits `user@host:path` the way rsync does: a colon before any slash makes it remote. */
export function parseTarget(target: string): RsyncTarget {
  const m = /^(?:([^@/:]+)@)?(\[[^\]]+\]|[^/:[\]]+):(.*)$/.exec(target);
  if (!m || target.startsWith('/') || target.startsWith('./')) return { root: target.replace(/(.)\/+$/, '$1') };
  const [, user, host, rest] = m as unknown as [string, string | undefined, string, string];
  return { remote: { login: user ? `${user}@${host}` : host, host: host.replace(/^\[|\]$/g, '') }, root: rest.replace(/(.)\/+$/, '$1') || '.' };
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A folder written with rsync, locally or over ssh. put spools the stream to a private local
 * file first (rsync sends files, not streams), then rsyncs it with a partial-dir and a temp-dir:
 * rsync writes a temporary file and renames it into place only when complete, so an interrupted
 * transfer never leaves a half file under the final name. list and stat use `rsync --list-only`;
 * get and delete read and remove with `cat` and `rm` over the same ssh.
 */
export class RsyncDestination implements Destination {
  readonly description: string;
  readonly target: RsyncTarget;
  readonly #options: ParsedRsyncOptions;
  readonly #configDir: string;
  readonly #spoolBase: string;
  readonly #logger: Logger | undefined;
  #private: Promise<{ dir: string; env: Record<string, string>; sshArgs: string[]; control?: string }> | undefined;
  #initialized: Promise<void> | undefined;

  constructor(options: ParsedRsyncOptions, ctx: { configDir: string; backupRoot?: string; logger?: Logger }) {
    this.#options = options;
    this.#configDir = ctx.configDir;
    this.#logger = ctx.logger;
    this.target = parseTarget(options.target);
    if (!this.target.remote) this.target = { root: this.#resolve(this.target.root) };
    this.#spoolBase = options.spoolDir
      ? this.#resolve(options.spoolDir)
      : ctx.backupRoot && existsSync(ctx.backupRoot)
        ? path.join(ctx.backupRoot, 'staging')
        : os.tmpdir();
    const r = this.target.remote;
    this.description = r ? `rsync://${r.login}${options.port === 22 ? '' : `:${options.port}`}${this.target.root.startsWith('/') ? '' : '/~/'}${this.target.root.replace(/^\.$/, '')}`.replace(/\/?$/, '/') : `rsync:${this.target.root}/`;
  }

  #resolve(p: string): string {
    return path.resolve(this.#configDir, expandHome(p));
  }

  /** The rsync argument naming a path under the root (`host:root/key` or `/root/key`). */
  #spec(rel: string, trailingSlash = false): string {
    const p = rel ? path.posix.join(this.target.root, rel) : this.target.root;
    const full = trailingSlash ? `${p.replace(/\/$/, '')}/` : p;
    return this.target.remote ? `${this.target.remote.login}:${full}` : full;
  }

  #key(key: string): string {
    const parts = checkKey(key);
    if (parts.includes(PARTIAL_DIR) || parts[0] === TEMP_DIR) {
      throw new BackupError('E_DESTINATION', `${this.description}: the key ${JSON.stringify(key)} uses a name rsync reserves (${PARTIAL_DIR}, ${TEMP_DIR})`);
    }
    return parts.join('/');
  }

  /** A private folder (0700) for the spooled files and, over ssh, the key file and askpass helper. */
  async #setup(): Promise<{ dir: string; env: Record<string, string>; sshArgs: string[]; control?: string }> {
    this.#private ??= (async () => {
      await fsp.mkdir(this.#spoolBase, { recursive: true, mode: 0o700 });
      const dir = await fsp.mkdtemp(path.join(this.#spoolBase, 'rsync-'));
      await fsp.chmod(dir, 0o700);
      // Beyond core's minimal environment: ssh's agent, and below the askpass helper's passphrase.
      const env: Record<string, string> = { LC_ALL: 'C.UTF-8', ...(process.env.SSH_AUTH_SOCK ? { SSH_AUTH_SOCK: process.env.SSH_AUTH_SOCK } : {}) };
      const sshArgs: string[] = [];
      const o = this.#options;
      if (this.target.remote) {
        sshArgs.push('-p', String(o.port), '-o', 'StrictHostKeyChecking=yes', '-o', `ConnectTimeout=${o.connectTimeout}`);
        sshArgs.push('-o', 'ServerAliveInterval=10', '-o', 'ServerAliveCountMax=3', '-o', 'LogLevel=ERROR');
        if (o.knownHosts) sshArgs.push('-o', `UserKnownHostsFile=${this.#resolve(o.knownHosts)}`);
        if (o.privateKey) {
          let keyFile: string;
          if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(o.privateKey)) {
            // Key text from the rc file: a 0600 file for ssh, never a process argument.
            keyFile = path.join(dir, 'id_key');
            await fsp.writeFile(keyFile, `${o.privateKey.replace(/\\n/g, '\n').trim()}\n`, { mode: 0o600 });
          } else keyFile = this.#resolve(o.privateKey);
          sshArgs.push('-i', keyFile, '-o', 'IdentitiesOnly=yes');
        }
        if (o.passphrase) {
          // ssh asks the askpass helper, which prints the passphrase from the environment.
          const askpass = path.join(dir, 'askpass');
          await fsp.writeFile(askpass, '#!/bin/sh\nprintf "%s\\n" "$SUTAZAI_RSYNC_PASSPHRASE"\n', { mode: 0o700 });
          Object.assign(env, { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', SUTAZAI_RSYNC_PASSPHRASE: o.passphrase, DISPLAY: process.env.DISPLAY ?? ':0' });
          sshArgs.push('-o', 'PasswordAuthentication=no', '-o', 'KbdInteractiveAuthentication=no', '-o', 'NumberOfPasswordPrompts=1');
        } else sshArgs.push('-o', 'BatchMode=yes');
        // One authenticated connection for every command of this run (a socket path must stay short).
        const controlDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-ssh-'));
        const control = path.join(controlDir, 'cm');
        sshArgs.push('-o', `ControlPath=${control}`, '-o', 'ControlMaster=no');
        return { dir, env, sshArgs, control };
      }
      return { dir, env, sshArgs };
    })().catch((err) => {
      this.#private = undefined;
      throw err;
    });
    return this.#private;
  }

  #run(program: string, args: string[], env: ChildEnv, stdout: 'collect' | PassThrough = 'collect'): { child: LaunchedChild; done: Promise<RunResult> } {
    const child = launchChild(program, args, { env, logger: this.#logger });
    let out = '';
    if (stdout === 'collect') child.process.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    else child.process.stdout!.pipe(stdout);
    return { child, done: child.outcome.then((o) => this.#result(program, o, out)) };
  }

  #result(program: string, o: ChildOutcome, stdout: string): RunResult {
    if (o.error?.code === 'ENOENT') {
      const pkg = program.includes('ssh') ? 'openssh-client' : 'rsync';
      throw new BackupError('E_CONFIG', `${this.description}: ${program} is not installed (or not on PATH): install it (Debian: apt-get install ${pkg})`);
    }
    if (o.error) throw o.error;
    return { code: o.code, stdout, stderr: o.stderr };
  }

  /**
   * Starts (or restarts) the shared ssh connection in the background. It is also where an unknown
   * or changed host key or a failed login shows first, before anything is sent.
   */
  async #master(): Promise<void> {
    const { env, sshArgs, control } = await this.#setup();
    if (!control || existsSync(control)) return;
    const args = [...sshArgs.map((a) => (a === 'ControlMaster=no' ? 'ControlMaster=yes' : a)), '-o', 'ControlPersist=120', '-N', '-f', this.target.remote!.login];
    this.#logger?.debug(`${this.description}: starting the ssh connection`);
    // With -f the backgrounded master keeps stderr open: wait for the exit of the foreground part only.
    const child = launchChild(this.#options.ssh, args, { env, stdout: 'ignore', waitFor: 'exit' });
    const result = this.#result(this.#options.ssh, await child.outcome, '');
    if (result.code !== 0) throw await this.#failure(result, 'connecting');
  }

  async #rsync(args: string[], doing: string, allowMissing = false): Promise<RunResult | undefined> {
    await this.#master();
    const { env, sshArgs } = await this.#setup();
    const full = ['-s', `--timeout=${this.#options.connectTimeout * 10}`, ...(this.target.remote ? ['-e', rshCommand(this.#options.ssh, sshArgs)] : []), ...args];
    const result = await this.#run(this.#options.rsync, full, env).done;
    if (result.code === 0) return result;
    if (allowMissing && result.code === 23 && /No such file or directory \(2\)/.test(result.stderr)) return undefined;
    throw await this.#failure(result, doing);
  }

  /** Runs a shell command on the target's side (over ssh for a remote target). */
  async #shell(command: string, stdout: 'collect' | PassThrough = 'collect'): Promise<{ child: LaunchedChild; done: Promise<RunResult> }> {
    await this.#master();
    const { env, sshArgs } = await this.#setup();
    const run = this.target.remote
      ? this.#run(this.#options.ssh, [...sshArgs, this.target.remote.login, command], env, stdout)
      : this.#run('/bin/sh', ['-c', command], env, stdout);
    return run;
  }

  async #failure(result: RunResult, doing: string): Promise<BackupError> {
    const stderr = result.stderr.replace(/\r/g, '');
    const r = this.target.remote;
    const tail = stderr.split('\n').filter((l) => l.trim() && !l.startsWith('@') && !/^rsync error: .*\(code \d+\)/.test(l)).slice(-3).join(' / ');
    const base = `${this.description}: ${doing}`;
    if (r && /Host key verification failed/.test(stderr)) {
      const name = this.#options.port === 22 ? r.host : `[${r.host}]:${this.#options.port}`;
      const file = this.#options.knownHosts ? this.#resolve(this.#options.knownHosts) : '~/.ssh/known_hosts';
      const presented = /sent by the remote host is\s*\n?\s*(SHA256:[A-Za-z0-9+/]+)/.exec(stderr)?.[1];
      if (presented) {
        const expected = await this.#knownFingerprints(name);
        return new BackupError(
          'E_AUTH',
          `${base}: host key of ${name} CHANGED: the server presented ${presented}, but ${file} holds ${expected.join(', ') || 'another key'}. ` +
            `If the server's key was changed on purpose, remove the old line (ssh-keygen -R '${name}' -f ${file}) and add the new key after checking its fingerprint; otherwise someone may be intercepting the connection. Nothing was sent.`,
          { details: { host: name, presented, expected } },
        );
      }
      return new BackupError(
        'E_AUTH',
        `${base}: host key of ${name} is unknown (not in ${file}): check its fingerprint with the server's administrator (ssh-keyscan -p ${this.#options.port} ${r.host} | ssh-keygen -lf -), then add it to ${file}. Nothing was sent.`,
        { details: { host: name } },
      );
    }
    if (r && /Permission denied \((publickey|password|keyboard)/.test(stderr)) {
      return new BackupError('E_AUTH', `${base}: login as ${r.login} failed: check the key, its passphrase and the server's authorized_keys (${tail})`);
    }
    if (/No space left on device|Disk quota exceeded/.test(stderr)) {
      return new BackupError('E_DESTINATION', `${base}: the target is full: ${tail}`, { cause: Object.assign(new Error(tail), { code: 'ENOSPC' }) });
    }
    if (/Permission denied|Read-only file system/.test(stderr)) {
      return new BackupError('E_DESTINATION', `${base}: ${tail}`, { cause: Object.assign(new Error(tail), { code: 'EACCES' }) });
    }
    return new BackupError('E_DESTINATION', `${base}: ${tail || 'failed'} (exit code ${result.code})`);
  }

  async #knownFingerprints(name: string): Promise<string[]> {
    const args = ['-l', '-F', name, ...(this.#options.knownHosts ? ['-f', this.#resolve(this.#options.knownHosts)] : [])];
    const result = await this.#run('ssh-keygen', args, {}).done.catch(() => undefined);
    return [...(result?.stdout.matchAll(/\b(SHA256:[A-Za-z0-9+/]+)/g) ?? [])].map((m) => m[1]!);
  }

  /** Makes the root and its temp-dir (rsync needs it to exist), and clears half files killed transfers left there. */
  async #init(): Promise<void> {
    this.#initialized ??= (async () => {
      const tmp = path.posix.join(this.target.root, TEMP_DIR);
      const command = `umask 077 && mkdir -p -- ${shq(tmp)} && find ${shq(tmp)} -type f -mmin +${STALE_TEMP_MINUTES} -exec rm -f -- {} + 2>/dev/null; exit 0`;
      const { done } = await this.#shell(command);
      const result = await done;
      if (result.code !== 0) throw await this.#failure(result, 'preparing the target');
    })().catch((err) => {
      this.#initialized = undefined;
      throw err;
    });
    return this.#initialized;
  }

  async put(key: string, body: Readable, _info?: PutInfo): Promise<void> {
    let rel: string;
    try {
      rel = this.#key(key);
      await this.#init();
    } catch (err) {
      body.destroy();
      throw err;
    }
    const { dir } = await this.#setup();
    const spool = path.join(dir, `put-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.mkdir(path.join(spool, path.dirname(rel)), { recursive: true, mode: 0o700 });
      await pipeline(body, createWriteStream(path.join(spool, rel), { mode: 0o600 }));
      // -R sends the key's folders along (created 0700 by --chmod); --partial-dir keeps an
      // interrupted upload's bytes out of sight for the next try to resume from.
      await this.#rsync(
        ['-R', '-p', '--chmod=D700,F600', `--partial-dir=${PARTIAL_DIR}`, `--temp-dir=${TEMP_DIR}`, `${spool}/./${rel}`, this.#spec('', true)],
        `uploading ${key}`,
      );
    } catch (err) {
      body.destroy();
      throw err instanceof BackupError ? err : new BackupError('E_DESTINATION', `${this.description}: uploading ${key}: ${(err as Error).message}`, { cause: err });
    } finally {
      await fsp.rm(spool, { recursive: true, force: true });
    }
  }

  async get(key: string): Promise<Readable> {
    const rel = this.#key(key);
    if (!(await this.stat(key))) throw new BackupError('E_NOT_FOUND', `${this.description}: ${key} does not exist`);
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    const { child, done } = await this.#shell(`exec cat -- ${shq(path.posix.join(this.target.root, rel))}`, out);
    out.on('close', () => {
      if (child.process.exitCode === null) child.kill();
    });
    done.then(
      async (result) => {
        if (result.code !== 0 && !out.destroyed) out.destroy(await this.#failure(result, `reading ${key}`));
      },
      (err: Error) => out.destroy(err),
    );
    return out;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash) : '';
    if (base) checkKey(base);
    const result = await this.#rsync(
      ['--list-only', '-r', '--no-h', '-8', `--exclude=${PARTIAL_DIR}/`, `--exclude=/${TEMP_DIR}/`, this.#spec(base, true)],
      `listing ${prefix || '(everything)'}`,
      true,
    );
    if (!result) return [];
    const out: ObjectInfo[] = [];
    for (const entry of parseListing(result.stdout)) {
      if (entry.type !== '-' || entry.name === '.') continue;
      const key = base ? `${base}/${entry.name}` : entry.name;
      if (key.startsWith(prefix)) out.push({ key, size: entry.size, modified: entry.modified });
    }
    return out;
  }

  async delete(key: string): Promise<void> {
    const rel = this.#key(key);
    const file = path.posix.join(this.target.root, rel);
    const dir = path.posix.dirname(rel);
    // The object, any partial upload of it, then the folders the deletion left empty.
    const partial = path.posix.join(this.target.root, dir, PARTIAL_DIR);
    const parts = [
      `rm -f -- ${shq(file)} ${shq(path.posix.join(partial, path.posix.basename(rel)))}`,
      `rmdir -- ${shq(partial)} 2>/dev/null`,
      ...(dir !== '.' ? [`cd -- ${shq(this.target.root)} && rmdir -p -- ${shq(dir)} 2>/dev/null`] : []),
    ];
    const { done } = await this.#shell(`${parts.join('; ')}; test ! -e ${shq(file)}`);
    const result = await done;
    if (result.code !== 0) throw await this.#failure(result, `deleting ${key}`);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const rel = this.#key(key);
    const result = await this.#rsync(['--list-only', '--no-h', '-8', this.#spec(rel)], `checking ${key}`, true);
    const entry = result && parseListing(result.stdout)[0];
    return entry?.type === '-' ? { key, size: entry.size, modified: entry.modified } : undefined;
  }

  async close(): Promise<void> {
    const setup = await this.#private?.catch(() => undefined);
    this.#private = undefined;
    this.#initialized = undefined;
    if (!setup) return;
    if (setup.control) {
      if (existsSync(setup.control)) {
        const args = [...setup.sshArgs, '-O', 'exit', this.target.remote!.login];
        await this.#run(this.#options.ssh, args, setup.env).done.catch(() => undefined);
      }
      await fsp.rm(path.dirname(setup.control), { recursive: true, force: true });
    }
    await fsp.rm(setup.dir, { recursive: true, force: true });
  }
}

export interface ListingEntry {
  type: string;
  size: number;
  modified: Date;
  name: string;
}

/** Parses `rsync --list-only --no-h -8` output: `-rw------- 1234 2026/11/26 05:59:25 path/name`. */
export function parseListing(text: string): ListingEntry[] {
  const out: ListingEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S)\S{9}\s+([\d,.]+)\s+(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) (.*)$/.exec(line);
    if (!m) continue;
    const [, type, size, y, mo, d, h, mi, s, name] = m as unknown as string[];
    out.push({
      type: type!,
      size: Number(size!.replace(/[,.]/g, '')),
      modified: new Date(+y!, +mo! - 1, +d!, +h!, +mi!, +s!),
      name: unescapeName(type === 'l' ? name!.replace(/ -> .*$/, '') : name!),
    });
  }
  return out;
}

/** rsync prints bytes it will not show as `\#ooo` (octal); the result is UTF-8. */
function unescapeName(name: string): string {
  if (!name.includes('\\#')) return name;
  const bytes: number[] = [];
  for (let i = 0; i < name.length; ) {
    const m = /^\\#([0-7]{3})/.exec(name.slice(i, i + 5));
    if (m) {
      bytes.push(parseInt(m[1]!, 8));
      i += 5;
    } else {
      const cp = name.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Quotes for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The `-e` command for rsync, which splits on spaces and honours quotes but not backslashes. */
function rshCommand(ssh: string, args: string[]): string {
  return [ssh, ...args]
    .map((a) => {
      if (!/[\s'"]/.test(a)) return a;
      if (!a.includes("'")) return `'${a}'`;
      if (!a.includes('"')) return `"${a}"`;
      throw new BackupError('E_CONFIG', `cannot pass ${JSON.stringify(a)} to rsync's -e: it holds both kinds of quotes`);
    })
    .join(' ');
}

/** `use: rsync` — rsync to a local folder or to `user@host:path` over ssh. */
export default defineDestination({
  name: 'rsync',
  options: rsyncOptions,
  traits: (o) => {
    const remote = Boolean(parseTarget(o.target).remote);
    return { medium: o.medium ?? (remote ? 'remote-server' : 'local-disk'), offsite: o.offsite ?? remote };
  },
  create(options, ctx) {
    ctx.secrets.add(options.passphrase);
    if (options.privateKey?.includes('PRIVATE KEY')) ctx.secrets.add(options.privateKey);
    return new RsyncDestination(options, { configDir: ctx.configDir, backupRoot: ctx.backupRoot, logger: ctx.logger });
  },
});

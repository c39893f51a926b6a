import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type SftpClient from 'ssh2-sftp-client';
import type { ConnectConfig, SFTPWrapper, Stats } from 'ssh2';
import {
  BackupError,
  checkKey,
  defineDestination,
  expandHome,
  isBackupError,
  z,
  type Destination,
  type Logger,
  type ObjectInfo,
  type PutInfo,
  type StorageUsage,
} from '@sutazai/backup-core';
import { HostKeyCheck } from './host-key.js';

export { HostKeyCheck, fingerprint, keyType, knownHostsName, parseKnownHosts, type HostKeyPolicy, type KnownHostKey } from './host-key.js';

/** ssh2 is loaded on first use: commands that never connect start faster. */
interface Ssh2 {
  SftpClient: typeof SftpClient;
  parseKey: typeof import('ssh2').utils.parseKey;
  DEFAULT_SERVER_HOST_KEY: string[];
  SUPPORTED_SERVER_HOST_KEY: string[];
}
let ssh2Module: Promise<Ssh2> | undefined;
function loadSsh2(): Promise<Ssh2> {
  ssh2Module ??= Promise.all([import('ssh2-sftp-client'), import('ssh2')]).then(([client, ssh2]) => ({
    SftpClient: client.default,
    parseKey: ssh2.default.utils.parseKey,
    ...(createRequire(import.meta.url)('ssh2/lib/protocol/constants.js') as { DEFAULT_SERVER_HOST_KEY: string[]; SUPPORTED_SERVER_HOST_KEY: string[] }),
  }));
  return ssh2Module;
}

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** Marks an upload in progress; such files are never listed. */
const TMP_MARK = '.tmp-';
/** An upload temp file untouched this long belongs to a dead connection and is removed by `list`. */
const STALE_TEMP_MS = 6 * 3600_000;
const MiB = 1024 * 1024;

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;

export const sftpOptions = z
  .object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string().min(1),
    /** A private key file (relative to the rc file's folder, `~` allowed), or the key itself (e.g. `${BACKUP_SSH_KEY}`). */
    privateKey: z.string().min(1).optional(),
    passphrase: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** Use the running ssh-agent (SSH_AUTH_SOCK). */
    agent: z.boolean().default(false),
    /** The remote folder that holds the repository; relative paths start at the login folder. */
    path: z.string().min(1),
    /** known_hosts file to check the server's key against; default ~/.ssh/known_hosts. */
    knownHosts: z.string().min(1).optional(),
    /** Pin the server's key instead: its fingerprint as `ssh-keygen -lf` prints it. */
    hostKey: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'expected a fingerprint like "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"')
      .optional(),
    /** Seconds to wait for the connection and login. */
    connectTimeout: z.number().positive().default(20),
    offsite: z.boolean().default(true),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (!o.privateKey && !o.password && !o.agent) {
      ctx.addIssue({ code: 'custom', path: ['privateKey'], message: 'give a privateKey (a file or ${VAR}), a password, or agent: true' });
    }
    if (o.passphrase && !o.privateKey) ctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'a passphrase needs a privateKey' });
    if (o.hostKey && o.knownHosts) ctx.addIssue({ code: 'custom', path: ['hostKey'], message: 'give either hostKey or knownHosts, not both' });
  });

export type SftpOptions = z.input<typeof sftpOptions>;
type ParsedSftpOptions = z.output<typeof sftpOptions>;

interface Session {
  client: SftpClient;
  sftp: SFTPWrapper;
}

/**
 * A folder on an SFTP server. Uploads go to a temporary name in the target folder and are
 * renamed into place (posix-rename where the server has it), so a key holds a whole object or
 * nothing. One SSH connection serves every operation; a dropped one is re-opened on next use.
 */
export class SftpDestination implements Destination {
  readonly description: string;
  readonly root: string;
  readonly #options: ParsedSftpOptions;
  readonly #configDir: string;
  readonly #logger: Logger | undefined;
  readonly #hostKey: HostKeyCheck;
  #session: Promise<Session> | undefined;
  #dirs = new Set<string>();

  constructor(options: ParsedSftpOptions, ctx: { configDir: string; logger?: Logger }) {
    this.#options = options;
    this.#configDir = ctx.configDir;
    this.#logger = ctx.logger;
    this.root = options.path.replace(/\/+$/, '') || '/';
    const port = options.port === 22 ? '' : `:${options.port}`;
    this.description = `sftp://${options.username}@${options.host}${port}${this.root.startsWith('/') ? '' : '/~/'}${this.root.replace(/^\/$/, '')}/`;
    this.#hostKey = new HostKeyCheck(
      options.host,
      options.port,
      options.hostKey ? { pinned: options.hostKey } : { knownHostsFile: this.#resolve(options.knownHosts ?? '~/.ssh/known_hosts') },
    );
  }

  #resolve(p: string): string {
    return path.resolve(this.#configDir, expandHome(p));
  }

  remotePath(key: string): string {
    return path.posix.join(this.root, ...checkKey(key));
  }

  async #connect(): Promise<Session> {
    const o = this.#options;
    const { SftpClient, DEFAULT_SERVER_HOST_KEY, SUPPORTED_SERVER_HOST_KEY } = await loadSsh2();
    await this.#hostKey.load();
    let rejectedKey: BackupError | undefined;
    const config: ConnectConfig = {
      host: o.host,
      port: o.port,
      username: o.username,
      readyTimeout: o.connectTimeout * 1000,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        rejectedKey = this.#hostKey.verify(key);
        return !rejectedKey;
      },
    };
    // Ask for a key of a type known_hosts holds first, as OpenSSH does.
    const preferred = this.#hostKey.preferredAlgorithms().filter((a) => SUPPORTED_SERVER_HOST_KEY.includes(a));
    if (preferred.length) {
      config.algorithms = { serverHostKey: [...preferred, ...DEFAULT_SERVER_HOST_KEY.filter((a) => !preferred.includes(a))] as never[] };
    }
    if (o.privateKey) config.privateKey = await this.#privateKey();
    if (o.passphrase) config.passphrase = o.passphrase;
    if (o.password) config.password = o.password;
    if (o.agent && process.env.SSH_AUTH_SOCK) config.agent = process.env.SSH_AUTH_SOCK;

    const logger = this.#logger;
    const client = new SftpClient(this.description, {
      // Without these the library prints to the console; a lost connection is re-opened on next use.
      error: (err: unknown) => logger?.debug(`${this.description}: connection error: ${(err as Error).message}`),
      end: () => logger?.debug(`${this.description}: connection ended`),
      close: () => logger?.debug(`${this.description}: connection closed`),
    });
    const session: Promise<Session> = client
      .connect(config)
      .then((sftp) => {
        const forget = () => {
          if (this.#session === session) this.#session = undefined;
        };
        const ssh = (client as unknown as { client: import('ssh2').Client }).client;
        ssh.once('close', forget);
        ssh.once('end', forget);
        connectionLost(sftp, ssh);
        return { client, sftp };
      })
      .catch(async (err: Error & { level?: string }) => {
        await client.end().catch(() => {});
        if (rejectedKey) throw rejectedKey;
        if (err.level === 'client-authentication' || /authentication methods failed/i.test(err.message)) {
          const methods = [o.privateKey && 'publickey', o.password && 'password', o.agent && 'agent'].filter(Boolean).join(', ');
          throw new BackupError('E_AUTH', `${this.description}: login as ${o.username} failed (${methods}): check the key, passphrase or password and the server's authorized_keys`, { cause: err });
        }
        throw new BackupError('E_DESTINATION', `${this.description}: cannot connect: ${err.message}`, { cause: err });
      });
    return session;
  }

  async #privateKey(): Promise<Buffer> {
    const value = this.#options.privateKey!;
    let key: Buffer;
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value)) key = Buffer.from(value.replace(/\\n/g, '\n'));
    else {
      const file = this.#resolve(value);
      try {
        key = await fsp.readFile(file);
      } catch (err) {
        throw new BackupError('E_CONFIG', `${this.description}: cannot read the privateKey file ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    const parsed = (await loadSsh2()).parseKey(key, this.#options.passphrase);
    if (parsed instanceof Error) {
      const hint = /passphrase/i.test(parsed.message) ? (this.#options.passphrase ? ': is the passphrase right?' : ': the key is encrypted: set passphrase') : '';
      throw new BackupError('E_AUTH', `${this.description}: cannot use the privateKey: ${parsed.message}${hint}`);
    }
    return key;
  }

  async #sftp(): Promise<SFTPWrapper> {
    this.#session ??= this.#connect().catch((err) => {
      this.#session = undefined;
      this.#dirs.clear();
      throw err;
    });
    return (await this.#session).sftp;
  }

  async #op<T>(doing: string, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    const sftp = await this.#sftp();
    try {
      return await fn(sftp);
    } catch (err) {
      throw this.#error(err, doing);
    }
  }

  #error(err: unknown, doing: string): BackupError {
    if (isBackupError(err)) return err;
    const e = err as Error & { code?: number | string };
    const denied = e.code === PERMISSION_DENIED;
    return new BackupError('E_DESTINATION', `${this.description}: ${doing}: ${e.message}${denied ? ' (permission denied)' : ''}`, {
      // Permission problems are not worth retrying.
      cause: denied ? Object.assign(new Error(e.message), { code: 'EACCES' }) : err,
    });
  }

  async #ensureDir(sftp: SFTPWrapper, dir: string): Promise<void> {
    if (this.#dirs.has(dir) || dir === '/' || dir === '.') return;
    try {
      await call<void>(sftp, (cb) => sftp.mkdir(dir, { mode: DIR_MODE }, cb));
    } catch (err) {
      const st = await call<Stats>(sftp, (cb) => sftp.stat(dir, cb)).catch(() => undefined);
      if (st?.isDirectory()) {
        this.#dirs.add(dir);
        return;
      }
      if (st || (err as { code?: number }).code !== NO_SUCH_FILE) throw err;
      await this.#ensureDir(sftp, path.posix.dirname(dir));
      try {
        await call<void>(sftp, (cb) => sftp.mkdir(dir, { mode: DIR_MODE }, cb));
      } catch (again) {
        // Another upload may have made it meanwhile.
        if (!(await call<Stats>(sftp, (cb) => sftp.stat(dir, cb)).catch(() => undefined))?.isDirectory()) throw again;
      }
    }
    this.#dirs.add(dir);
  }

  async put(key: string, body: Readable, _info?: PutInfo): Promise<void> {
    const file = this.remotePath(key);
    const dir = path.posix.dirname(file);
    const tmp = path.posix.join(dir, `.${path.posix.basename(file).slice(0, 100)}${TMP_MARK}${randomBytes(6).toString('hex')}`);
    let sftp: SFTPWrapper;
    try {
      sftp = await this.#sftp();
    } catch (err) {
      body.destroy();
      throw err;
    }
    let handle: Buffer | undefined;
    try {
      await this.#ensureDir(sftp, dir);
      handle = await call<Buffer>(sftp, (cb) => sftp.open(tmp, 'w', { mode: FILE_MODE }, cb));
      await pipeline(body, new RemoteFileWriter(sftp, handle));
      // Make the bytes durable before the rename makes them visible.
      if (hasExtension(sftp, 'fsync@openssh.com')) await call(sftp, (cb) => sftp.ext_openssh_fsync(handle!, cb));
      const h = handle;
      handle = undefined;
      await call<void>(sftp, (cb) => sftp.close(h, cb));
      if (hasExtension(sftp, 'posix-rename@openssh.com')) {
        await call<void>(sftp, (cb) => sftp.ext_openssh_rename(tmp, file, cb));
      } else {
        // Plain SFTP rename refuses to replace: remove the old object first (a short window without it).
        await call<void>(sftp, (cb) => sftp.unlink(file, cb)).catch(() => {});
        await call<void>(sftp, (cb) => sftp.rename(tmp, file, cb));
      }
    } catch (err) {
      body.destroy();
      if (handle) await call<void>(sftp, (cb) => sftp.close(handle!, cb)).catch(() => {});
      await call<void>(sftp, (cb) => sftp.unlink(tmp, cb)).catch(() => {});
      throw this.#error(err, `uploading ${key}`);
    }
  }

  async get(key: string): Promise<Readable> {
    const file = this.remotePath(key);
    return this.#op(`reading ${key}`, async (sftp) => {
      let handle: Buffer;
      try {
        handle = await call<Buffer>(sftp, (cb) => sftp.open(file, 'r', cb));
      } catch (err) {
        if ((err as { code?: number }).code === NO_SUCH_FILE) throw new BackupError('E_NOT_FOUND', `${this.description}: ${key} does not exist`);
        throw err;
      }
      const st = await call<Stats>(sftp, (cb) => sftp.fstat(handle, cb)).catch(async (err) => {
        await call<void>(sftp, (cb) => sftp.close(handle, cb)).catch(() => {});
        throw err;
      });
      return Readable.from(readRemoteFile(sftp, handle, st.size), { objectMode: false });
    });
  }

  /** Reads only the range, with the same pipelined requests as `get`. */
  async getRange(key: string, offset: number, length: number): Promise<Readable> {
    const file = this.remotePath(key);
    return this.#op(`reading ${key}`, async (sftp) => {
      let handle: Buffer;
      try {
        handle = await call<Buffer>(sftp, (cb) => sftp.open(file, 'r', cb));
      } catch (err) {
        if ((err as { code?: number }).code === NO_SUCH_FILE) throw new BackupError('E_NOT_FOUND', `${this.description}: ${key} does not exist`);
        throw err;
      }
      const st = await call<Stats>(sftp, (cb) => sftp.fstat(handle, cb)).catch(async (err) => {
        await call<void>(sftp, (cb) => sftp.close(handle, cb)).catch(() => {});
        throw err;
      });
      const end = Math.min(st.size, offset + Math.max(0, length));
      return Readable.from(readRemoteFile(sftp, handle, end, 16, Math.min(offset, end)), { objectMode: false });
    });
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash) : '';
    const start = base ? path.posix.join(this.root, ...checkKey(base)) : this.root;
    return this.#op(`listing ${prefix || '(everything)'}`, async (sftp) => {
      const out: ObjectInfo[] = [];
      const walk = async (dir: string, keyPrefix: string): Promise<void> => {
        let entries;
        try {
          entries = await call<{ filename: string; attrs: Stats }[]>(sftp, (cb) => sftp.readdir(dir, cb));
        } catch (err) {
          if ((err as { code?: number }).code === NO_SUCH_FILE) return;
          throw err;
        }
        const subdirs: [string, string][] = [];
        for (const { filename, attrs } of entries) {
          if (filename === '.' || filename === '..') continue;
          const key = keyPrefix ? `${keyPrefix}/${filename}` : filename;
          if (attrs.isDirectory()) {
            if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) subdirs.push([path.posix.join(dir, filename), key]);
          } else if (filename.includes(TMP_MARK)) {
            if (Date.now() - attrs.mtime * 1000 > STALE_TEMP_MS) {
              // A temp file untouched for hours is what a dropped connection left behind.
              await call<void>(sftp, (cb) => sftp.unlink(path.posix.join(dir, filename), cb)).catch(() => {});
            }
          } else if (attrs.isFile() && key.startsWith(prefix)) {
            out.push({ key, size: attrs.size, modified: new Date(attrs.mtime * 1000) });
          }
        }
        for (const [d, k] of subdirs) await walk(d, k);
      };
      await walk(start, base);
      return out;
    });
  }

  async delete(key: string): Promise<void> {
    const file = this.remotePath(key);
    await this.#op(`deleting ${key}`, async (sftp) => {
      try {
        await call<void>(sftp, (cb) => sftp.unlink(file, cb));
      } catch (err) {
        if ((err as { code?: number }).code !== NO_SUCH_FILE) throw err;
      }
      // Remove folders the deletion left empty, up to the root.
      let dir = path.posix.dirname(file);
      while (dir !== this.root && dir.startsWith(this.root === '/' ? '/' : `${this.root}/`)) {
        try {
          await call<void>(sftp, (cb) => sftp.rmdir(dir, cb));
        } catch {
          break;
        }
        this.#dirs.delete(dir);
        dir = path.posix.dirname(dir);
      }
    });
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = this.remotePath(key);
    return this.#op(`checking ${key}`, async (sftp) => {
      try {
        const st = await call<Stats>(sftp, (cb) => sftp.stat(file, cb));
        return st.isFile() ? { key, size: st.size, modified: new Date(st.mtime * 1000) } : undefined;
      } catch (err) {
        if ((err as { code?: number }).code === NO_SUCH_FILE) return undefined;
        throw err;
      }
    });
  }

  async usage(): Promise<StorageUsage | undefined> {
    return this.#op('checking free space', async (sftp) => {
      if (!hasExtension(sftp, 'statvfs@openssh.com')) return undefined;
      const st = await call<{ f_blocks: number; f_bfree: number; f_frsize: number }>(sftp, (cb) => sftp.ext_openssh_statvfs(this.root, cb));
      return { totalBytes: st.f_blocks * st.f_frsize, usedBytes: (st.f_blocks - st.f_bfree) * st.f_frsize };
    });
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    this.#dirs.clear();
    if (session) await (await session.catch(() => undefined))?.client.end().catch(() => {});
  }
}

function hasExtension(sftp: SFTPWrapper, name: string): boolean {
  return Boolean((sftp as unknown as { _extensions?: Record<string, string> })._extensions?.[name]);
}

const lostConnections = new WeakMap<SFTPWrapper, Promise<never>>();

/** Rejects when the connection under `sftp` goes away: requests sent after that get no answer at all. */
function connectionLost(sftp: SFTPWrapper, ssh: { once(event: string, fn: () => void): unknown }): Promise<never> {
  let lost = lostConnections.get(sftp);
  if (!lost) {
    lost = new Promise<never>((_resolve, reject) => {
      const fail = () => reject(new Error('the SSH connection was lost'));
      ssh.once('close', fail);
      ssh.once('end', fail);
      sftp.once('close', fail);
    });
    lost.catch(() => {});
    lostConnections.set(sftp, lost);
  }
  return lost;
}

function call<T>(sftp: SFTPWrapper, fn: (cb: (err: Error | undefined | null, value?: T) => void) => void): Promise<T> {
  const request = new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
  const lost = lostConnections.get(sftp);
  return lost ? Promise.race([request, lost]) : request;
}

/**
 * Writes to an open remote file with several requests in flight (ssh2's own write stream waits
 * for each reply, which caps throughput at one packet per round trip).
 */
class RemoteFileWriter extends Writable {
  readonly #sftp: SFTPWrapper;
  readonly #handle: Buffer;
  readonly #maxInFlight: number;
  #position = 0;
  #inFlight = 0;
  #error: Error | undefined;
  #waiting: { below: number; cb: (err?: Error | null) => void } | undefined;

  constructor(sftp: SFTPWrapper, handle: Buffer, maxInFlight = 32) {
    super({ highWaterMark: MiB });
    this.#sftp = sftp;
    this.#handle = handle;
    this.#maxInFlight = maxInFlight;
    // Writes in flight when the connection drops are never answered: fail instead of waiting.
    lostConnections.get(sftp)?.catch((err: Error) => {
      this.#error ??= err;
      this.#wake();
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#error) return cb(this.#error);
    const max = (this.#sftp as unknown as { _maxWriteLen?: number })._maxWriteLen ?? 32 * 1024;
    for (let off = 0; off < chunk.length; off += max) {
      const len = Math.min(max, chunk.length - off);
      this.#inFlight++;
      this.#sftp.write(this.#handle, chunk, off, len, this.#position, (err) => {
        this.#inFlight--;
        if (err && !this.#error) this.#error = err;
        this.#wake();
      });
      this.#position += len;
    }
    this.#when(this.#maxInFlight, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#when(1, cb);
  }

  #when(below: number, cb: (err?: Error | null) => void): void {
    if (this.#error || this.#inFlight < below) cb(this.#error);
    else this.#waiting = { below, cb };
  }

  #wake(): void {
    const w = this.#waiting;
    if (w && (this.#error || this.#inFlight < w.below)) {
      this.#waiting = undefined;
      w.cb(this.#error);
    }
  }
}

/** Reads a remote file of known size (from `start`) with several requests in flight, in order, then closes it. */
async function* readRemoteFile(sftp: SFTPWrapper, handle: Buffer, size: number, maxInFlight = 16, start = 0): AsyncGenerator<Buffer> {
  const block = (sftp as unknown as { _maxReadLen?: number })._maxReadLen ?? 32 * 1024;
  const read = (pos: number, len: number) => {
    const buf = Buffer.allocUnsafe(len);
    return call<number>(sftp, (cb) =>
      sftp.read(handle, buf, 0, len, pos, (err, bytesRead) =>
        // ssh2 reports reading at the end of the file as an error with code 1 (EOF).
        err && (err as { code?: number }).code !== 1 ? cb(err) : cb(undefined, err ? 0 : bytesRead),
      ),
    ).then((n) => buf.subarray(0, n));
  };
  const inFlight: { pos: number; len: number; data: Promise<Buffer> }[] = [];
  let position = start;
  try {
    while (position < size || inFlight.length) {
      while (position < size && inFlight.length < maxInFlight) {
        const len = Math.min(block, size - position);
        inFlight.push({ pos: position, len, data: read(position, len) });
        position += len;
      }
      const next = inFlight.shift()!;
      let chunk = await next.data;
      // A server may answer with fewer bytes than asked: fetch the rest before moving on.
      while (chunk.length < next.len) {
        const more = await read(next.pos + chunk.length, next.len - chunk.length);
        if (!more.length) throw new Error(`the file ended at ${next.pos + chunk.length} of ${size} bytes (changed while being read?)`);
        chunk = Buffer.concat([chunk, more]);
      }
      yield chunk;
    }
  } finally {
    await Promise.allSettled(inFlight.map((r) => r.data));
    await call<void>(sftp, (cb) => sftp.close(handle, cb)).catch(() => {});
  }
}

/** `use: sftp` — a folder on a server reached over SFTP, with host-key checking on. */
export default defineDestination({
  name: 'sftp',
  options: sftpOptions,
  traits: (o) => ({ medium: 'remote-server', offsite: o.offsite }),
  create(options, ctx) {
    for (const secret of [options.passphrase, options.password]) ctx.secrets.add(secret);
    if (options.privateKey?.includes('PRIVATE KEY')) ctx.secrets.add(options.privateKey);
    return new SftpDestination(options, { configDir: ctx.configDir, logger: ctx.logger });
  },
});

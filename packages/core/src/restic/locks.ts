import { hostname as osHostname, userInfo } from 'node:os';
import { BackupError } from '../errors.js';
import type { JsonFileStore } from './store.js';

/**
 * restic's lock protocol (doc/design.rst "Locks", internal/restic/lock.go): a lock is a sealed
 * JSON file under locks/. Any number of non-exclusive locks (backup, restore, check) may be held
 * at once; an exclusive one (prune) excludes every other. To lock: look for conflicting locks,
 * write ours, wait, look again (two lockers racing both see each other and both back off). A lock
 * is refreshed (rewritten with a new time) every 5 minutes and counts as stale 30 minutes after
 * its time, or at once when it names a process of this host that no longer runs.
 */

export interface LockJson {
  time: string;
  exclusive: boolean;
  hostname: string;
  username: string;
  pid: number;
  uid?: number;
  gid?: number;
}

export const STALE_AFTER_MS = 30 * 60 * 1000;
export const REFRESH_EVERY_MS = 5 * 60 * 1000;
/** How long restic waits between writing its lock and looking for others again. */
export const WAIT_BEFORE_CHECK_MS = 200;

/** What stale detection needs to know about here and now; replaceable in tests. */
export interface LockHost {
  now(): number;
  hostname: string;
  /** Whether a process of this host runs. */
  processExists(pid: number): boolean;
}

export const thisHost: LockHost = {
  now: () => Date.now(),
  hostname: osHostname(),
  processExists(pid) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      // EPERM: it runs, as another user.
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  },
};

export function isStale(lock: LockJson, host: LockHost = thisHost): boolean {
  const time = Date.parse(lock.time);
  if (!Number.isFinite(time) || host.now() - time > STALE_AFTER_MS) return true;
  return lock.hostname === host.hostname && !host.processExists(lock.pid);
}

export interface LockOptions {
  exclusive: boolean;
  /** Names the repository in messages (`local:/var/backups/x`). */
  where: string;
  /** Remove stale locks of others, as `restic unlock` does, instead of failing on them. Default: true. */
  removeStale?: boolean;
  host?: LockHost;
  refreshEveryMs?: number;
  waitBeforeCheckMs?: number;
}

/** A lock this process holds on a repository. Release it in a `finally`. */
export class RepositoryLock {
  readonly #store: JsonFileStore;
  readonly #options: LockOptions;
  readonly #host: LockHost;
  #id: string;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #lost: BackupError | undefined;

  private constructor(store: JsonFileStore, options: LockOptions, id: string) {
    this.#store = store;
    this.#options = options;
    this.#host = options.host ?? thisHost;
    this.#id = id;
  }

  static async acquire(store: JsonFileStore, options: LockOptions): Promise<RepositoryLock> {
    const host = options.host ?? thisHost;
    await checkOthers(store, options, host, undefined);
    const id = await store.saveJson('locks', lockJson(options.exclusive, host));
    const lock = new RepositoryLock(store, options, id);
    await new Promise((r) => setTimeout(r, options.waitBeforeCheckMs ?? WAIT_BEFORE_CHECK_MS));
    try {
      await checkOthers(store, options, host, id);
    } catch (err) {
      await store.remove('locks', id).catch(() => undefined);
      throw err;
    }
    lock.#timer = setInterval(() => void lock.refresh().catch(() => undefined), options.refreshEveryMs ?? REFRESH_EVERY_MS);
    lock.#timer.unref();
    return lock;
  }

  /** The lock file's current id (it changes on each refresh). */
  get id(): string {
    return this.#id;
  }

  /** Throws when the lock was lost (removed by someone else, or a refresh failed): stop writing. */
  assertHeld(): void {
    if (this.#lost) throw this.#lost;
  }

  /** Rewrites the lock with the current time, then removes the old file; fails if ours was removed. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    this.assertHeld();
    try {
      if (!(await this.#store.list('locks')).includes(this.#id)) {
        throw new BackupError('E_LOCKED', `${this.#options.where}: our lock locks/${this.#id} was removed by another process (it thought it stale)`);
      }
      const old = this.#id;
      this.#id = await this.#store.saveJson('locks', lockJson(this.#options.exclusive, this.#host));
      await this.#store.remove('locks', old);
    } catch (err) {
      this.#lost ??=
        (err as BackupError).code === 'E_LOCKED'
          ? (err as BackupError)
          : new BackupError('E_LOCKED', `${this.#options.where}: refreshing our lock failed: ${(err as Error).message}`, { cause: err });
      throw this.#lost;
    }
  }

  async release(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#refreshing?.catch(() => undefined);
    await this.#store.remove('locks', this.#id);
  }
}

function lockJson(exclusive: boolean, host: LockHost): LockJson {
  const user = safeUser();
  return {
    time: new Date(host.now()).toISOString(),
    exclusive,
    hostname: host.hostname,
    username: user?.username ?? '',
    pid: process.pid,
    ...(user && user.uid >= 0 ? { uid: user.uid, gid: user.gid } : {}),
  };
}

/** Throws E_LOCKED on a live conflicting lock; removes stale ones when allowed. */
async function checkOthers(store: JsonFileStore, options: LockOptions, host: LockHost, own: string | undefined): Promise<void> {
  for (const id of await store.list('locks')) {
    if (id === own) continue;
    let other: LockJson;
    try {
      other = await store.loadJson<LockJson>('locks', id);
    } catch (err) {
      // Released between list and load: no conflict.
      if ((err as BackupError).code === 'E_NOT_FOUND') continue;
      throw new BackupError('E_LOCKED', `${options.where}: lock file locks/${id} cannot be read (${(err as Error).message}); remove it if no process holds it`, {
        cause: err,
      });
    }
    if (!options.exclusive && !other.exclusive) continue;
    if (isStale(other, host) && options.removeStale !== false) {
      await store.remove('locks', id);
      continue;
    }
    throw new BackupError('E_LOCKED', `${options.where}: ${describeLock(other, id)}`, { details: { lock: id, pid: other.pid, hostname: other.hostname } });
  }
}

export function describeLock(lock: LockJson, id: string): string {
  return (
    `the repository is locked ${lock.exclusive ? 'exclusively ' : ''}by PID ${lock.pid} on ${lock.hostname}` +
    `${lock.username ? ` by ${lock.username}` : ''} since ${lock.time} (locks/${id}); ` +
    'a lock is stale 30 minutes after its last refresh, or once its process on that host has ended'
  );
}

function safeUser(): { username: string; uid: number; gid: number } | undefined {
  try {
    return userInfo();
  } catch {
    return undefined;
  }
}

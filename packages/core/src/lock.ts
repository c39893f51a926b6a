import { promises as fsp, readFileSync, rmSync, watch } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BackupError, isBackupError } from './errors.js';
import { linkRefused, openPrivate, readOwnFile } from './fs.js';
import { ownFolder } from './backup-root.js';
import { currentOwner, isGone, isProcessOwner, type ProcessOwner } from './process-owner.js';

interface LockInfo extends ProcessOwner {
  startedAt: string;
  command: string;
}

/** What the lock file holds: a holder, nothing (missing), or bytes that do not parse. */
type LockFile = { text: string; holder?: LockInfo; modified: Date } | undefined;

/** A lock file that does not parse is taken for one being written until it is this old. */
const DAMAGED_GRACE_MS = 10_000;
/** How long to wait for another process that is breaking the same stale lock. */
const BREAK_WAIT_MS = 2_000;
/** While waiting for a lock, look again at least this often (a change in state/ wakes us sooner). */
const WAIT_POLL_MS = 2_000;

export interface LockWait {
  /** How long to wait for a lock another run holds (default 0: refuse at once). */
  waitMs?: number;
  /** Stops the wait (E_ABORTED). */
  signal?: AbortSignal;
  /** Called once, when the lock is found held and the wait begins. */
  onWait?: (error: BackupError) => void;
  pollMs?: number;
}

/**
 * One run at a time per repository: a lock file created exclusively, with stale-lock detection.
 * A stale lock (its process is gone) is broken under a second lock file, `lock.break`, so that
 * of several processes finding the same stale lock exactly one takes over.
 */
export class RunLock {
  readonly file: string;
  readonly #breakFile: string;
  #held = false;
  // A process that exits without releasing (a forced exit after a signal) still removes its lock.
  readonly #onExit = () => {
    try {
      const holder = JSON.parse(readFileSync(this.file, 'utf8')) as LockInfo;
      if (isMe(holder)) rmSync(this.file, { force: true });
    } catch {
      // nothing to remove
    }
  };

  /** `name`: `lock` (one run at a time), `daemon.lock` (one daemon per repository). */
  constructor(stateDir: string, name = 'lock') {
    this.file = path.join(stateDir, name);
    this.#breakFile = `${this.file}.break`;
  }

  /**
   * Takes the lock; with `waitMs`, waits that long for a holder to release it (or to die: the
   * stale-lock rules are the same), then fails with E_LOCKED saying how long it waited.
   */
  async acquire(command: string, wait: LockWait = {}): Promise<void> {
    const deadline = Date.now() + (wait.waitMs ?? 0);
    let onWait = wait.onWait;
    for (;;) {
      try {
        return await this.tryAcquire(command);
      } catch (err) {
        if (!isBackupError(err) || err.code !== 'E_LOCKED' || !wait.waitMs) throw err;
        await this.waitUntilFree({ ...wait, waitMs: deadline - Date.now(), ...(onWait ? { onWait } : {}) });
        onWait = undefined;
      }
    }
  }

  /**
   * Resolves once nobody holds the lock (it is missing, or stale and so taken over by the next
   * `acquire`), without taking it; fails with E_LOCKED when `waitMs` runs out first.
   */
  async waitUntilFree(wait: LockWait = {}): Promise<void> {
    const waitMs = Math.max(0, wait.waitMs ?? 0);
    const deadline = Date.now() + waitMs;
    for (let first = true; ; first = false) {
      const held = this.heldBy(await this.read());
      if (!held) return;
      if (Date.now() >= deadline) {
        const waited = Math.round(waitMs / 1000);
        throw new BackupError('E_LOCKED', `gave up after waiting ${waited} s for the lock: ${held.message}`, { details: { ...held.details, waitedSeconds: waited } });
      }
      if (first) wait.onWait?.(held);
      await changeIn(path.dirname(this.file), Math.min(wait.pollMs ?? WAIT_POLL_MS, deadline - Date.now()), wait.signal);
      if (wait.signal?.aborted) throw new BackupError('E_ABORTED', `stopped while waiting for the lock ${this.file}`);
    }
  }

  /** Why the lock cannot be taken now, or undefined when it is free or stale. */
  private heldBy(found: LockFile): BackupError | undefined {
    if (!found) return undefined;
    if (found.holder) return isGone(found.holder) ? undefined : this.locked(found.holder);
    const age = Date.now() - found.modified.getTime();
    if (age >= DAMAGED_GRACE_MS) return undefined;
    return new BackupError(
      'E_LOCKED',
      `the lock ${this.file} is empty or damaged and was written ${Math.round(age / 1000)} s ago: a run may be starting; if no run is active, remove it`,
      { details: { lock: this.file } },
    );
  }

  private async tryAcquire(command: string): Promise<void> {
    await ownFolder(path.dirname(path.dirname(this.file)), path.basename(path.dirname(this.file)));
    const info: LockInfo = { ...currentOwner(), startedAt: new Date().toISOString(), command };
    const until = Date.now() + BREAK_WAIT_MS;
    for (;;) {
      if (await createExclusive(this.file, JSON.stringify(info) + '\n')) {
        this.#held = true;
        process.on('exit', this.#onExit);
        return;
      }
      const found = await this.read();
      if (!found) continue;
      const held = this.heldBy(found);
      if (held) throw held;
      if (!(await this.breakStale(found.text))) {
        if (Date.now() > until) throw new BackupError('E_LOCKED', `could not take the lock ${this.file}: another process is taking over its stale lock`);
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
      }
    }
  }

  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    process.removeListener('exit', this.#onExit);
    const found = await this.read().catch(() => undefined);
    if (found?.holder && isMe(found.holder)) await fsp.rm(this.file, { force: true });
  }

  private locked(holder: LockInfo): BackupError {
    return new BackupError(
      'E_LOCKED',
      `another run holds the lock (${holder.command}, pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}); ` +
        `if no run is active, remove ${this.file}`,
      { details: { lock: this.file, holder } },
    );
  }

  private async read(): Promise<LockFile> {
    let text: string;
    let modified: Date;
    try {
      const st = await fsp.lstat(this.file);
      if (!st.isFile()) throw st.isSymbolicLink() ? linkRefused(this.file) : new BackupError('E_CONFIG', `${this.file} is not a regular file: remove it`);
      modified = st.mtime;
      text = await readOwnFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let holder: LockInfo | undefined;
    try {
      const parsed = JSON.parse(text) as LockInfo;
      if (isProcessOwner(parsed) && typeof parsed.startedAt === 'string') holder = parsed;
    } catch {
      holder = undefined;
    }
    return { text, modified, ...(holder ? { holder } : {}) };
  }

  /**
   * Removes the stale lock whose content was `stale`, under `lock.break`. Resolves false when
   * another process is breaking it right now (the caller waits and looks again).
   */
  private async breakStale(stale: string): Promise<boolean> {
    const me = JSON.stringify(currentOwner());
    if (!(await createExclusive(this.#breakFile, me))) {
      await this.removeAbandonedBreak();
      return false;
    }
    try {
      // Only we may remove the lock now; a fresh lock could have replaced the stale one since
      // we read it (its holder removed it and another run took it): compare before removing.
      const now = await this.read();
      if (now?.text === stale) await fsp.rm(this.file, { force: true });
    } finally {
      await fsp.rm(this.#breakFile, { force: true });
    }
    return true;
  }

  /** A `lock.break` left by a process that died while breaking a lock: moved aside and removed. */
  private async removeAbandonedBreak(): Promise<void> {
    let text: string;
    let modified: number;
    try {
      modified = (await fsp.lstat(this.#breakFile)).mtimeMs;
      text = await readOwnFile(this.#breakFile);
    } catch {
      return;
    }
    let owner: unknown;
    try {
      owner = JSON.parse(text);
    } catch {
      owner = undefined;
    }
    // Unreadable: being written right now, unless it is old.
    if (isProcessOwner(owner) ? !isGone(owner) : Date.now() - modified < DAMAGED_GRACE_MS) return;
    const aside = `${this.#breakFile}.${randomBytes(4).toString('hex')}`;
    if (!(await fsp.rename(this.#breakFile, aside).then(() => true, () => false))) return;
    const moved = await readOwnFile(aside).catch(() => undefined);
    if (moved !== text) await fsp.link(aside, this.#breakFile).catch(() => {});
    await fsp.rm(aside, { force: true });
  }
}

/** Resolves when something in `dir` changes (the lock removed), after `ms`, or on abort. */
function changeIn(dir: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    let watcher: ReturnType<typeof watch> | undefined;
    const done = () => {
      clearTimeout(timer);
      watcher?.close();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    try {
      // Some file systems cannot be watched: the timeout alone then paces the wait.
      watcher = watch(dir, { persistent: false }, done);
      watcher.on('error', () => undefined);
    } catch {
      watcher = undefined;
    }
    if (signal?.aborted) done();
    else signal?.addEventListener('abort', done, { once: true });
  });
}

function isMe(holder: ProcessOwner): boolean {
  const me = currentOwner();
  return holder.pid === me.pid && holder.host === me.host;
}

/** Creates a file with this content unless one exists; resolves false when one does. */
async function createExclusive(file: string, content: string): Promise<boolean> {
  let handle;
  try {
    handle = await openPrivate(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

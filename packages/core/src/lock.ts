import { promises as fsp, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BackupError } from './errors.js';
import { ensureDir, openPrivate } from './fs.js';

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
  /** The process's start time in clock ticks (Linux), so a reused pid is not mistaken for us. */
  processStart?: string;
  command: string;
}

/** One run at a time per repository: a lock file created exclusively, with stale-lock detection. */
export class RunLock {
  readonly file: string;
  #held = false;
  // A process that exits without releasing (a forced exit after a signal) still removes its lock.
  readonly #onExit = () => {
    try {
      const holder = JSON.parse(readFileSync(this.file, 'utf8')) as LockInfo;
      if (holder.pid === process.pid && holder.host === os.hostname()) rmSync(this.file, { force: true });
    } catch {
      // nothing to remove
    }
  };

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'lock');
  }

  async acquire(command: string): Promise<void> {
    await ensureDir(path.dirname(this.file));
    const info: LockInfo = {
      pid: process.pid,
      host: os.hostname(),
      startedAt: new Date().toISOString(),
      ...(processStart(process.pid) ? { processStart: processStart(process.pid)! } : {}),
      command,
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await openPrivate(this.file, 'wx');
        try {
          await handle.writeFile(JSON.stringify(info) + '\n');
          await handle.sync();
        } finally {
          await handle.close();
        }
        this.#held = true;
        process.on('exit', this.#onExit);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await this.read();
      if (holder && !isStale(holder)) {
        throw new BackupError(
          'E_LOCKED',
          `another run holds the lock (${holder.command}, pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}); ` +
            `if no run is active, remove ${this.file}`,
          { details: { lock: this.file, holder } },
        );
      }
      await this.breakStale(holder);
    }
    throw new BackupError('E_LOCKED', `could not take the lock ${this.file}`);
  }

  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    process.removeListener('exit', this.#onExit);
    const holder = await this.read();
    if (holder?.pid === process.pid && holder.host === os.hostname()) await fsp.rm(this.file, { force: true });
  }

  private async read(): Promise<LockInfo | undefined> {
    try {
      return JSON.parse(await fsp.readFile(this.file, 'utf8')) as LockInfo;
    } catch {
      // A lock file being written right now, or garbage: an empty or broken lock is stale only
      // once it is old enough that no writer can still be busy with it.
      try {
        const st = await fsp.stat(this.file);
        if (Date.now() - st.mtimeMs < 10_000) return { pid: -1, host: os.hostname(), startedAt: st.mtime.toISOString(), command: 'unknown' };
      } catch {
        return undefined;
      }
      return undefined;
    }
  }

  /** Moves a stale lock aside, making sure it is the stale one we read and not a fresh lock. */
  private async breakStale(stale: LockInfo | undefined): Promise<void> {
    const aside = `${this.file}.stale-${randomBytes(4).toString('hex')}`;
    try {
      await fsp.rename(this.file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let moved: LockInfo | undefined;
    try {
      moved = JSON.parse(await fsp.readFile(aside, 'utf8')) as LockInfo;
    } catch {
      moved = undefined;
    }
    if (moved && stale && (moved.pid !== stale.pid || moved.startedAt !== stale.startedAt)) {
      // Someone else broke the stale lock and took a fresh one in between: put theirs back.
      await fsp.link(aside, this.file).catch(() => {});
    }
    await fsp.rm(aside, { force: true });
  }
}

function isStale(holder: LockInfo): boolean {
  if (holder.pid === -1) return false;
  if (holder.host !== os.hostname()) return false; // cannot see another host's processes
  if (!isAlive(holder.pid)) return true;
  const start = processStart(holder.pid);
  return Boolean(holder.processStart && start && holder.processStart !== start);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

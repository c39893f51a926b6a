/**
 * The run lock from taking to letting go: what the lock file says, that release (and a process
 * exiting without release) removes only a lock that is still this one's, how a damaged lock and
 * a stale lock being broken by another process are waited for, and a `lock.break` left by a
 * process that died while breaking. Holders are real processes (this one, a sleeping child, a
 * child that exited).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BackupError } from '../src/errors.js';
import { RunLock } from '../src/lock.js';
import { currentOwner } from '../src/process-owner.js';
import { makeUnwritable } from './helpers/unwritable.js';

let root: string;
let stateDir: string;
let lockFile: string;
let breakFile: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-lock-life-'));
  stateDir = path.join(root, 'state');
  lockFile = path.join(stateDir, 'lock');
  breakFile = `${lockFile}.break`;
  await fsp.mkdir(stateDir, { mode: 0o700 });
});
afterEach(async () => {
  for (const c of children.splice(0)) c.kill();
  await fsp.rm(root, { recursive: true, force: true });
});

const host = os.hostname();
const deadPid = () => Number(spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout);
function sleeper(): number {
  const child = spawn('sleep', ['60']);
  children.push(child);
  return child.pid!;
}
const staleLock = () => fsp.writeFile(lockFile, JSON.stringify({ pid: deadPid(), host, startedAt: '2026-01-01T00:00:00.000Z', command: 'run' }) + '\n', { mode: 0o600 });
const exists = (p: string) => fsp.access(p).then(() => true, () => false);
const exitListeners = () => process.listeners('exit');

async function failure(p: Promise<unknown>): Promise<ReturnType<BackupError['toJSON']>> {
  const err = await p.then(
    () => undefined,
    (e: BackupError) => e,
  );
  expect(err, 'acquire succeeded').toBeDefined();
  return err!.toJSON();
}

async function age(file: string, ms: number): Promise<void> {
  const then = new Date(Date.now() - ms);
  await fsp.utimes(file, then, then);
}

describe('the lock file', () => {
  it('is one private line naming the process, host, start time and command', async () => {
    const lock = new RunLock(stateDir);
    await lock.acquire('prune --dry-run');
    const text = await fsp.readFile(lockFile, 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(JSON.parse(text)).toEqual({ ...currentOwner(), startedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), command: 'prune --dry-run' });
    expect((await fsp.stat(lockFile)).mode & 0o777).toBe(0o600);
    await lock.release();
  });

  it('a lock held by a live process is refused, naming it, as --json prints it', async () => {
    const holder = { pid: sleeper(), host, startedAt: '2026-01-01T00:00:00.000Z', command: 'run --profile daily' };
    await fsp.writeFile(lockFile, JSON.stringify(holder), { mode: 0o600 });
    expect(await failure(new RunLock(stateDir).acquire('run'))).toEqual({
      code: 'E_LOCKED',
      message: `another run holds the lock (run --profile daily, pid ${holder.pid} on ${host}, since 2026-01-01T00:00:00.000Z); if no run is active, remove ${lockFile}`,
      details: { lock: lockFile, holder },
    });
  });

  it("a lock without a start time or owner is damaged, not a live run's, and says how old it is", async () => {
    for (const content of [{ pid: sleeper(), host }, { startedAt: '2026-01-01T00:00:00.000Z', command: 'run' }]) {
      await fsp.writeFile(lockFile, JSON.stringify(content), { mode: 0o600 });
      await age(lockFile, 4_000);
      expect(await failure(new RunLock(stateDir).acquire('run'))).toEqual({
        code: 'E_LOCKED',
        message: `the lock ${lockFile} is empty or damaged and was written 4 s ago: a run may be starting; if no run is active, remove it`,
        details: { lock: lockFile },
      });
    }
  });
});

describe('the grace a damaged lock or lock.break gets', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('ends at ten seconds: one exactly that old is stale, and the lock is taken', async () => {
    // The clock stands still so that the file's age is exactly the grace period.
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-11-26T02:00:00.000Z') });
    const tenSecondsAgo = new Date(Date.now() - 10_000);
    for (const file of [lockFile, breakFile]) {
      await staleLock();
      await fsp.writeFile(file, '{"pid": 1');
      await fsp.utimes(file, tenSecondsAgo, tenSecondsAgo);
      const lock = new RunLock(stateDir);
      await lock.acquire('run');
      expect(JSON.parse(await fsp.readFile(lockFile, 'utf8')).pid, file).toBe(process.pid);
      await lock.release();
      expect(await fsp.readdir(stateDir), file).toEqual([]);
    }
  });
});

describe('something other than a file at the lock', () => {
  it('a folder there is refused, naming it, and left alone', async () => {
    // In a folder not named `state`, which backupRoot's own check of state/lock does not cover.
    const elsewhere = path.join(root, 'locks');
    const lock = path.join(elsewhere, 'lock');
    await fsp.mkdir(path.join(lock, 'inside'), { recursive: true, mode: 0o700 });
    expect(await failure(new RunLock(elsewhere).acquire('run'))).toEqual({ code: 'E_CONFIG', message: `${lock} is not a regular file: remove it` });
    expect(await fsp.readdir(lock)).toEqual(['inside']);
  });
});

describe('release', () => {
  it('removes only a lock this RunLock took and still holds', async () => {
    const first = new RunLock(stateDir);
    const never = new RunLock(stateDir);
    await first.acquire('run');
    await never.release();
    expect(await exists(lockFile)).toBe(true);
    await first.release();
    expect(await exists(lockFile)).toBe(false);

    const second = new RunLock(stateDir);
    await second.acquire('verify');
    await first.release();
    expect(JSON.parse(await fsp.readFile(lockFile, 'utf8')).command).toBe('verify');
    await second.release();
  });

  it('leaves a lock that is no longer this process\'s: taken by the same pid on another host, or removed by hand', async () => {
    const lock = new RunLock(stateDir);
    await lock.acquire('run');
    const theirs = JSON.stringify({ pid: process.pid, host: 'backup-host-2', startedAt: '2026-01-01T00:00:00.000Z', command: 'run' });
    await fsp.writeFile(lockFile, theirs);
    await lock.release();
    expect(await fsp.readFile(lockFile, 'utf8')).toBe(theirs);

    await fsp.rm(lockFile);
    await lock.acquire('run');
    // init: alive, on this host, and not this process.
    const another = JSON.stringify({ pid: 1, host, startedAt: '2026-01-01T00:00:00.000Z', command: 'run' });
    await fsp.writeFile(lockFile, another);
    await lock.release();
    expect(await fsp.readFile(lockFile, 'utf8')).toBe(another);

    await fsp.rm(lockFile);
    await lock.acquire('run');
    await fsp.rm(lockFile);
    await expect(lock.release()).resolves.toBeUndefined();
  });

  it('a process that exits without releasing still removes its own lock, and only its own', async () => {
    const before = exitListeners();
    const lock = new RunLock(stateDir);
    await lock.acquire('run');
    const added = exitListeners().filter((l) => !before.includes(l));
    expect(added).toHaveLength(1);
    // What Node runs at exit, run here without exiting.
    (added[0] as () => void)();
    expect(await exists(lockFile)).toBe(false);

    await lock.release();
    expect(exitListeners()).toEqual(before);
    await lock.acquire('run');
    const theirs = JSON.stringify({ pid: process.pid, host: 'backup-host-2', startedAt: '2026-01-01T00:00:00.000Z', command: 'run' });
    await fsp.writeFile(lockFile, theirs);
    (exitListeners().filter((l) => !before.includes(l))[0] as () => void)();
    expect(await fsp.readFile(lockFile, 'utf8')).toBe(theirs);
    await fsp.rm(lockFile);
    // Nothing left to remove: the handler does not throw.
    (exitListeners().filter((l) => !before.includes(l))[0] as () => void)();
    await lock.release();
  });

  it('leaves no file descriptor open', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const lock = new RunLock(stateDir);
    await lock.acquire('run');
    await lock.release();
    const open = fds();
    for (let i = 0; i < 20; i++) {
      await lock.acquire('run');
      await lock.release();
    }
    // Not toBe: other tests' children may close their pipes meanwhile.
    expect(fds()).toBeLessThanOrEqual(open);
  });
});

describe('a stale lock another process is breaking', () => {
  it('is waited for: the lock is taken once that process is done', async () => {
    await staleLock();
    await fsp.writeFile(breakFile, JSON.stringify({ pid: sleeper(), host }));
    // That process finishes its break (removes the stale lock, then its lock.break) in 300 ms.
    setTimeout(() => void fsp.rm(lockFile).then(() => fsp.rm(breakFile)), 300);
    const lock = new RunLock(stateDir);
    await lock.acquire('run');
    expect(JSON.parse(await fsp.readFile(lockFile, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  it('is given up on after two seconds, saying why', async () => {
    await staleLock();
    await fsp.writeFile(breakFile, JSON.stringify({ pid: sleeper(), host }));
    expect(await failure(new RunLock(stateDir).acquire('run'))).toEqual({
      code: 'E_LOCKED',
      message: `could not take the lock ${lockFile}: another process is taking over its stale lock`,
    });
    expect(await exists(breakFile)).toBe(true);
  });

  it('a lock.break that does not parse is one being written while fresh', async () => {
    await staleLock();
    for (const content of ['', '{"pid": 1']) {
      await fsp.writeFile(breakFile, content);
      expect((await failure(new RunLock(stateDir).acquire('run'))).message).toMatch(/another process is taking over its stale lock/);
      expect(await fsp.readFile(breakFile, 'utf8')).toBe(content);
    }
  });

  it('a lock.break of a process that died, or an old one that is not an owner, is removed and the lock taken', async () => {
    for (const [content, ageMs] of [
      [JSON.stringify({ pid: deadPid(), host }), 0],
      ['{"pid": 1', 60_000],
      ['{"note": "not an owner"}', 60_000],
    ] as const) {
      await staleLock();
      await fsp.writeFile(breakFile, content);
      await age(breakFile, ageMs);
      const lock = new RunLock(stateDir);
      await lock.acquire('run');
      expect(JSON.parse(await fsp.readFile(lockFile, 'utf8')).pid).toBe(process.pid);
      await lock.release();
      expect((await fsp.readdir(stateDir)).sort(), content).toEqual([]);
    }
  });
});

describe('a state folder the lock cannot be created in', () => {
  it('fails with the system error, without waiting', async () => {
    const unwritable = await makeUnwritable(stateDir);
    try {
      let err: NodeJS.ErrnoException | undefined;
      await new RunLock(stateDir).acquire('run').catch((e: NodeJS.ErrnoException) => (err = e));
      expect(['EPERM', 'EACCES']).toContain(err?.code);
    } finally {
      await unwritable.undo();
    }
  });
});

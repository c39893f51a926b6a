/**
 * The run lock's stale-lock detection, against real processes: a dead pid, a reused pid, another
 * host's lock, an empty or damaged lock file, and several processes breaking the same stale lock
 * at once (exactly one may win).
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunLock } from '../src/lock.js';

const LOCK_MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/lock.js');

let root: string;
let stateDir: string;
let lockFile: string;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-lock-'));
  stateDir = path.join(root, 'state');
  lockFile = path.join(stateDir, 'lock');
  await fsp.mkdir(stateDir, { mode: 0o700 });
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
  return Number(child.stdout);
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks. */
function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

async function writeLock(holder: Record<string, unknown>): Promise<void> {
  await fsp.writeFile(lockFile, JSON.stringify({ startedAt: '2026-01-01T00:00:00.000Z', command: 'run --profile daily', ...holder }) + '\n', { mode: 0o600 });
}

async function holderPid(): Promise<number> {
  return (JSON.parse(await fsp.readFile(lockFile, 'utf8')) as { pid: number }).pid;
}

describe('stale-lock detection', () => {
  it('takes over the lock of a dead process on this host', async () => {
    await writeLock({ pid: deadPid(), host: os.hostname() });
    const lock = new RunLock(stateDir);
    await lock.acquire('run');
    expect(await holderPid()).toBe(process.pid);
    await lock.release();
    await expect(fsp.access(lockFile)).rejects.toThrow();
  });

  it('takes over a lock whose pid now belongs to another process (a reused pid)', async () => {
    // This process is alive, but it started at another time than the lock's holder did.
    await writeLock({ pid: process.pid, host: os.hostname(), processStart: String(Number(startOf(process.pid)) - 1) });
    const lock = new RunLock(stateDir);
    await lock.acquire('run');
    expect(JSON.parse(await fsp.readFile(lockFile, 'utf8'))).toMatchObject({ pid: process.pid, processStart: startOf(process.pid), command: 'run' });
    await lock.release();
  });

  it('keeps the lock of a live process that is the one that took it', async () => {
    const sleeper = spawn('sleep', ['30']);
    try {
      await writeLock({ pid: sleeper.pid, host: os.hostname(), processStart: startOf(sleeper.pid!) });
      await expect(new RunLock(stateDir).acquire('run')).rejects.toMatchObject({
        code: 'E_LOCKED',
        message: expect.stringContaining(`another run holds the lock (run --profile daily, pid ${sleeper.pid} on ${os.hostname()}`),
      });
      expect(await holderPid()).toBe(sleeper.pid);
    } finally {
      sleeper.kill();
    }
  });

  it("never breaks another host's lock, even when its pid is dead here", async () => {
    await writeLock({ pid: deadPid(), host: 'backup-host-2' });
    await expect(new RunLock(stateDir).acquire('run')).rejects.toMatchObject({
      code: 'E_LOCKED',
      message: expect.stringMatching(/another run holds the lock \(run --profile daily, pid \d+ on backup-host-2, since .*\); if no run is active, remove /),
    });
    expect(JSON.parse(await fsp.readFile(lockFile, 'utf8')).host).toBe('backup-host-2');
  });

  it('an empty or damaged lock file is one being written while it is fresh, stale once old', async () => {
    for (const content of ['', '{"pid": 12', 'not json at all', '{"host": "x"}']) {
      await fsp.writeFile(lockFile, content, { mode: 0o600 });
      await expect(new RunLock(stateDir).acquire('run')).rejects.toMatchObject({
        code: 'E_LOCKED',
        message: expect.stringMatching(/the lock .*state\/lock is empty or damaged and was written \d+ s ago: a run may be starting; if no run is active, remove it/),
      });
      expect(await fsp.readFile(lockFile, 'utf8')).toBe(content);
      const old = new Date(Date.now() - 60_000);
      await fsp.utimes(lockFile, old, old);
      const lock = new RunLock(stateDir);
      await lock.acquire('run');
      expect(await holderPid()).toBe(process.pid);
      await lock.release();
    }
  });

  it('a link planted at the lock is refused, not followed or removed', async () => {
    const elsewhere = path.join(root, 'elsewhere');
    await fsp.writeFile(elsewhere, 'not a lock');
    await fsp.symlink(elsewhere, lockFile);
    await expect(new RunLock(stateDir).acquire('run')).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringContaining(`${lockFile} is a symbolic link`) });
    expect(await fsp.readlink(lockFile)).toBe(elsewhere);
    expect(await fsp.readFile(elsewhere, 'utf8')).toBe('not a lock');
  });
});

describe('breaking a stale lock', () => {
  it('of many acquirers in one process, exactly one wins each time', async () => {
    for (let round = 0; round < 25; round++) {
      await writeLock({ pid: deadPid(), host: os.hostname() });
      const locks = Array.from({ length: 12 }, () => new RunLock(stateDir));
      const results = await Promise.allSettled(locks.map((l) => l.acquire(`run ${round}`)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won, `round ${round}`).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('E_LOCKED');
      await Promise.all(locks.map((l) => l.release()));
      await expect(fsp.access(lockFile)).rejects.toThrow();
      expect((await fsp.readdir(stateDir)).sort()).toEqual([]);
    }
  });

  it('of several processes, exactly one wins', async () => {
    const script = `
      import { RunLock } from ${JSON.stringify(LOCK_MODULE)};
      const lock = new RunLock(process.argv[1]);
      try {
        await lock.acquire('run');
        process.stdout.write('won');
        // Hold it while the others try.
        await new Promise((r) => setTimeout(r, 1500));
        await lock.release();
      } catch (err) {
        process.stdout.write(err.code);
      }`;
    for (let round = 0; round < 3; round++) {
      await writeLock({ pid: deadPid(), host: os.hostname() });
      const outcomes = await Promise.all(
        Array.from({ length: 5 }, () => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', script, stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          return new Promise<string>((resolve) => child.on('close', () => resolve(out)));
        }),
      );
      expect(outcomes.sort(), `round ${round}`).toEqual(['E_LOCKED', 'E_LOCKED', 'E_LOCKED', 'E_LOCKED', 'won']);
    }
  });
});

describe('waiting for the lock', () => {
  it('takes the lock as soon as its live holder releases it', async () => {
    const holder = new RunLock(stateDir);
    await holder.acquire('run --profile daily');
    const waits: string[] = [];
    const t0 = Date.now();
    // A poll far longer than the test: only the change in state/ can wake the waiter in time.
    const waiting = new RunLock(stateDir).acquire('run --profile weekly', { waitMs: 60_000, pollMs: 60_000, onWait: (e) => waits.push(e.message) });
    await new Promise((r) => setTimeout(r, 300));
    await holder.release();
    await waiting;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(waits).toEqual([expect.stringContaining('another run holds the lock (run --profile daily')]);
    expect(JSON.parse(await fsp.readFile(lockFile, 'utf8')).command).toBe('run --profile weekly');
  });

  it('takes over when the holder dies while it waits: the stale-lock rules are the same', async () => {
    const sleeper = spawn('sleep', ['30']);
    await writeLock({ pid: sleeper.pid, host: os.hostname(), processStart: startOf(sleeper.pid!) });
    const waiting = new RunLock(stateDir).acquire('run', { waitMs: 30_000, pollMs: 100 });
    await new Promise((r) => setTimeout(r, 300));
    sleeper.kill('SIGKILL');
    await waiting;
    expect(await holderPid()).toBe(process.pid);
  });

  it('gives up after the wait with E_LOCKED saying how long it waited; another host\'s lock is still never broken', async () => {
    await writeLock({ pid: deadPid(), host: 'backup-host-2' });
    await expect(new RunLock(stateDir).acquire('run', { waitMs: 1_000, pollMs: 100 })).rejects.toMatchObject({
      code: 'E_LOCKED',
      message: expect.stringMatching(/^gave up after waiting 1 s for the lock: another run holds the lock \(run --profile daily, pid \d+ on backup-host-2/),
      details: expect.objectContaining({ waitedSeconds: 1 }),
    });
    expect(JSON.parse(await fsp.readFile(lockFile, 'utf8')).host).toBe('backup-host-2');
  });

  it('stops waiting when its signal aborts', async () => {
    await writeLock({ pid: process.pid, host: os.hostname(), processStart: startOf(process.pid) });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    await expect(new RunLock(stateDir).acquire('run', { waitMs: 60_000, pollMs: 60_000, signal: abort.signal })).rejects.toMatchObject({ code: 'E_ABORTED' });
  });

  it('a daemon lock is a second lock beside the run lock', async () => {
    const daemon = new RunLock(stateDir, 'daemon.lock');
    await daemon.acquire('daemon');
    await expect(new RunLock(stateDir, 'daemon.lock').acquire('daemon')).rejects.toMatchObject({ code: 'E_LOCKED' });
    const run = new RunLock(stateDir);
    await run.acquire('run');
    await run.release();
    await daemon.release();
    await expect(fsp.access(path.join(stateDir, 'daemon.lock'))).rejects.toThrow();
  });
});

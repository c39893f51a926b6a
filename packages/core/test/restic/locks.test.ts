import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { isStale, RepositoryLock, thisHost, type LockHost, type LockJson } from '../../src/restic/locks.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { RESTIC, restic, TEST_KDF } from '../../../../test/helpers/restic.js';

let dir: string;
let repo: ResticRepository;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-restic-locks-'));
  repo = await ResticRepository.init(new LocalDestination(path.join(dir, 'repo')), { password: 'pw', kdf: TEST_KDF });
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const where = 'test-repo';
const fast = { where, waitBeforeCheckMs: 10 };

function otherLock(overrides: Partial<LockJson>): LockJson {
  return { time: new Date().toISOString(), exclusive: false, hostname: 'other-host', username: 'bob', pid: 4242, ...overrides };
}

/** A pid that no process has: one that just ended. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid as number;
}

describe('restic lock protocol', () => {
  it('lets non-exclusive locks share and keeps an exclusive lock alone', async () => {
    const a = await repo.lock(false, { waitBeforeCheckMs: 10 });
    const b = await RepositoryLock.acquire(repo, { ...fast, exclusive: false });
    await expect(RepositoryLock.acquire(repo, { ...fast, exclusive: true })).rejects.toMatchObject({
      code: 'E_LOCKED',
      message: expect.stringMatching(/^test-repo: the repository is locked by PID \d+ on .* \(locks\/[0-9a-f]{64}\)/),
    });
    await expect(repo.lock(true)).rejects.toThrow(`local:${dir}/repo: the repository is locked by PID ${process.pid}`);
    await a.release();
    await b.release();
    const x = await RepositoryLock.acquire(repo, { ...fast, exclusive: true });
    await expect(RepositoryLock.acquire(repo, { ...fast, exclusive: false })).rejects.toThrow(/locked exclusively by PID/);
    // A refused attempt leaves no lock file behind.
    expect(await repo.list('locks')).toEqual([x.id]);
    await x.release();
    expect(await repo.list('locks')).toEqual([]);
  });

  it('lets at most one of two racing exclusive lockers win', async () => {
    for (let round = 0; round < 5; round++) {
      const results = await Promise.allSettled([
        RepositoryLock.acquire(repo, { ...fast, exclusive: true }),
        RepositoryLock.acquire(repo, { ...fast, exclusive: true }),
      ]);
      const won = results.filter((r): r is PromiseFulfilledResult<RepositoryLock> => r.status === 'fulfilled');
      expect(won.length).toBeLessThanOrEqual(1);
      for (const r of won) await r.value.release();
      expect(await repo.list('locks')).toEqual([]);
    }
  });

  it('removes stale locks of others (too old, or of a dead process on this host) and honours live ones', async () => {
    const old = await repo.saveJson('locks', otherLock({ exclusive: true, time: new Date(Date.now() - 31 * 60_000).toISOString() }));
    const dead = await repo.saveJson('locks', otherLock({ hostname: thisHost.hostname, pid: deadPid() }));
    const lock = await RepositoryLock.acquire(repo, { ...fast, exclusive: true });
    expect(await repo.list('locks')).toEqual([lock.id]);
    await lock.release();
    expect([old, dead]).not.toContain(lock.id);

    const live = await repo.saveJson('locks', otherLock({ time: new Date(Date.now() - 29 * 60_000).toISOString() }));
    await expect(RepositoryLock.acquire(repo, { ...fast, exclusive: true })).rejects.toMatchObject({ code: 'E_LOCKED', details: { lock: live, pid: 4242 } });
    const alive = await repo.saveJson('locks', otherLock({ hostname: thisHost.hostname, pid: process.pid, exclusive: true }));
    await expect(RepositoryLock.acquire(repo, { ...fast, exclusive: false })).rejects.toMatchObject({ details: { lock: alive } });
    await expect(RepositoryLock.acquire(repo, { ...fast, exclusive: true, removeStale: false })).rejects.toMatchObject({ code: 'E_LOCKED' });
  });

  it('judges staleness by age and, on this host only, by the process', () => {
    const host: LockHost = { now: () => Date.parse('2024-01-01T12:00:00Z'), hostname: 'here', processExists: (pid) => pid === 1 };
    const at = (time: string, hostname = 'here', pid = 1) => isStale({ time, exclusive: false, hostname, username: '', pid }, host);
    expect(at('2024-01-01T11:31:00Z')).toBe(false);
    expect(at('2024-01-01T11:29:00Z')).toBe(true);
    expect(at('2024-01-01T11:59:00.123456789+00:00', 'here', 2)).toBe(true);
    expect(at('2024-01-01T11:59:00Z', 'elsewhere', 2)).toBe(false);
    expect(at('not a time')).toBe(true);
  });

  it('refreshes by writing a new lock file and removing the old one, and notices when its lock was removed', async () => {
    let now = Date.now();
    const host: LockHost = { ...thisHost, now: () => now };
    const lock = await RepositoryLock.acquire(repo, { ...fast, exclusive: true, host });
    const first = lock.id;
    now += 60_000;
    await lock.refresh();
    expect(lock.id).not.toBe(first);
    expect(await repo.list('locks')).toEqual([lock.id]);
    expect((await repo.loadJson<LockJson>('locks', lock.id)).time).toBe(new Date(now).toISOString());
    await repo.remove('locks', lock.id);
    await expect(lock.refresh()).rejects.toThrow(/our lock locks\/[0-9a-f]{64} was removed by another process/);
    expect(() => lock.assertHeld()).toThrow(expect.objectContaining({ code: 'E_LOCKED' }));
  });
});

describe('stock restic and we honour the locks of one another', () => {
  it('restic refuses to back up while we hold an exclusive lock, and parses our lock file', async () => {
    const repoDir = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'f'), 'x');
    const lock = await RepositoryLock.acquire(repo, { ...fast, exclusive: true });
    const backup = await restic(repoDir, 'pw', ['backup', src]);
    expect(backup.code).not.toBe(0);
    expect(backup.stderr).toContain('repository is already locked exclusively');
    const cat = await restic(repoDir, 'pw', ['cat', '--no-lock', 'lock', lock.id]);
    expect(JSON.parse(cat.stdout)).toMatchObject({ exclusive: true, pid: process.pid, hostname: os.hostname() });
    await lock.release();
    expect((await restic(repoDir, 'pw', ['backup', src])).code).toBe(0);
  });

  it('we refuse an exclusive lock while restic backs up, and take it once restic is done', async () => {
    const repoDir = path.join(dir, 'repo');
    const pwFile = path.join(dir, 'pw');
    await fsp.writeFile(pwFile, 'pw');
    // `backup --stdin` holds its lock for as long as its input stays open.
    const child = spawn(RESTIC, ['-r', repoDir, '--no-cache', 'backup', '--stdin'], {
      env: { PATH: process.env.PATH, HOME: dir, RESTIC_PASSWORD_FILE: pwFile },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    try {
      for (let i = 0; i < 100 && !(await repo.list('locks')).length; i++) await new Promise((r) => setTimeout(r, 100));
      await expect(RepositoryLock.acquire(repo, { ...fast, exclusive: true })).rejects.toMatchObject({
        code: 'E_LOCKED',
        details: { pid: child.pid },
      });
      // A non-exclusive lock (our backups) shares with restic's backup.
      await (await RepositoryLock.acquire(repo, { ...fast, exclusive: false })).release();
    } finally {
      child.stdin.end('streamed\n');
    }
    expect(await exited).toBe(0);
    await (await RepositoryLock.acquire(repo, { ...fast, exclusive: true })).release();
  });
});

import { execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalDestination } from '../../src/destination.js';
import { ResticRepository } from '../../src/restic/repository.js';
import { restic as runRestic, TEST_KDF } from '../../../../test/helpers/restic.js';
import { compareTrees } from './fixture.js';
import { makeHistory } from './history.js';
import { RESTIC_PASSWORD, restic } from './restic-cli.js';

/**
 * kill -9 at random moments: a prune, and a backup, each run as a process of its own
 * (restic-job.mjs, on the compiled modules) on a fresh copy of a repository, killed, and then
 * `restic check` must pass and the next backup (and prune) complete.
 */

const JOB = fileURLToPath(new URL('./restic-job.mjs', import.meta.url));
const KILLS = 10;
/** Each loop runs restic a few times per kill: minutes on a loaded machine. */
const LOOP_TIMEOUT = 20 * 60_000;
const PACK = String(1024 * 1024);

interface JobRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a job; with `killAt`, sends SIGKILL when it says so (a step it prints, or a delay). */
function job(args: string[], killAt?: { afterMs?: number; atStep?: string; thenMs?: number }): Promise<JobRun> {
  const started = Date.now();
  const child = spawn(process.execPath, [JOB, ...args], { env: { ...process.env, RESTIC_PASSWORD, PACK_SIZE: PACK }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const kill = () => setTimeout(() => child.kill('SIGKILL'), killAt?.thenMs ?? 0);
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (killAt?.atStep && stdout.includes(`step ${killAt.atStep}\n`)) kill();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  if (killAt?.afterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAt.afterMs);
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started })));
}

async function resticCheck(repo: string, readData = false): Promise<void> {
  // --no-lock: the killed job's lock is still there (restic 0.14's check would wait for nobody).
  const r = await runRestic(repo, RESTIC_PASSWORD, ['--no-lock', 'check', ...(readData ? ['--read-data'] : [])]);
  expect(r.code, `restic check on ${repo}: ${r.stdout}\n${r.stderr}`).toBe(0);
}

describe('crash safety (kill -9)', () => {
  let work: string;
  let source: string;
  let base: string;
  let forget: string[];
  /** The snapshots no prune forgets, and copies of the source as each was taken. */
  let kept: { id: string; state: string }[];

  /** Each kept snapshot, restored by restic, is its source byte for byte. */
  async function keptSnapshotsIntact(repo: string): Promise<void> {
    for (const { id, state } of kept) {
      const target = path.join(work, 'restore-check');
      await rm(target, { recursive: true, force: true });
      await restic(repo, ['--no-lock', 'restore', id, '--target', target]);
      expect(await compareTrees(state, path.join(target, 'files', source)), `snapshot ${id} in ${repo}`).toEqual([]);
      await rm(target, { recursive: true, force: true });
    }
  }

  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'restic-crash-')));
    source = path.join(work, 'src');
    base = path.join(work, 'base');
    await ResticRepository.init(new LocalDestination(base), { password: RESTIC_PASSWORD, kdf: TEST_KDF });
    const ids: string[] = [];
    for (let step = 0; step < 4; step++) {
      await makeHistory(source, step);
      const r = await job(['backup', base, source]);
      expect(r.code, r.stderr).toBe(0);
      ids.push((JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { id: string }).id);
      execFileSync('cp', ['-a', source, path.join(work, `state-${step}`)]);
    }
    forget = ids.slice(0, 2);
    kept = ids.slice(2).map((id, i) => ({ id, state: path.join(work, `state-${i + 2}`) }));
  }, 5 * 60_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('leaves a repository restic checks and the next backup and prune complete, wherever a prune is killed', async () => {
    const whole = path.join(work, 'whole');
    execFileSync('cp', ['-a', base, whole]);
    const full = await job(['prune', whole, ...forget]);
    expect(full.code, full.stderr).toBe(0);
    const steps = full.stdout.split('\n').filter((l) => l.startsWith('step ')).map((l) => l.slice(5));
    expect(steps).toEqual(['plan', 'delete-unreferenced', 'repack', 'write-index', 'delete-index', 'delete-packs', 'done']);
    await resticCheck(whole, true);

    const killedAt: string[] = [];
    for (let i = 0; killedAt.length < KILLS && i < 4 * KILLS; i++) {
      const repo = path.join(work, `prune-${i}`);
      execFileSync('cp', ['-a', base, repo]);
      // Half at a random moment of the whole run, half a random moment after a given step began.
      const killAt = i % 2 ? { afterMs: randomInt(50, Math.max(100, Math.round(full.ms * 1.1))) } : { atStep: steps[(i / 2) % (steps.length - 1)]!, thenMs: randomInt(0, 40) };
      const run = await job(['prune', repo, ...forget], killAt);
      const printed = run.stdout.split('\n').filter((l) => l.startsWith('step ')).at(-1) ?? 'before the first step';
      if (run.signal === 'SIGKILL') killedAt.push(printed);
      else expect(run.code, run.stderr).toBe(0);
      await resticCheck(repo);
      await keptSnapshotsIntact(repo);
      // The next backup finds the killed prune's lock stale (its process is gone) and completes.
      await makeHistory(path.join(work, `src-${i}`), i);
      const next = await job(['backup', repo, path.join(work, `src-${i}`)]);
      expect(next.code, `backup after a prune killed at ${printed}: ${next.stderr}`).toBe(0);
      // And the next prune finishes the job: what the killed one left (unindexed packs, both
      // indexes, snapshots it did not get to) is collected.
      const left = (await readdir(path.join(repo, 'snapshots'))).filter((id) => forget.includes(id));
      const again = await job(['prune', repo, ...left]);
      expect(again.code, `prune after a prune killed at ${printed}: ${again.stderr}`).toBe(0);
      await resticCheck(repo, true);
      // No lock is left (a write killed midway may leave a temporary file, which restic skips as no id).
      expect((await readdir(path.join(repo, 'locks')).catch(() => [])).filter((f) => /^[0-9a-f]{64}$/.test(f))).toEqual([]);
      await rm(repo, { recursive: true, force: true });
    }
    console.log(`prune killed ${killedAt.length} times, after: ${killedAt.join(', ')}`);
    expect(killedAt.length).toBeGreaterThanOrEqual(KILLS);
    expect(new Set(killedAt).size).toBeGreaterThanOrEqual(4);
  }, LOOP_TIMEOUT);

  it('leaves a repository restic checks, the earlier snapshots whole and the next backup complete, wherever a backup is killed', async () => {
    const changed = path.join(work, 'changed');
    execFileSync('cp', ['-a', source, changed]);
    await makeHistory(changed, 4);
    const whole = path.join(work, 'backup-whole');
    execFileSync('cp', ['-a', base, whole]);
    const full = await job(['backup', whole, changed]);
    expect(full.code, full.stderr).toBe(0);
    await rm(whole, { recursive: true, force: true });

    let killed = 0;
    for (let i = 0; killed < KILLS && i < 4 * KILLS; i++) {
      const repo = path.join(work, `backup-${i}`);
      execFileSync('cp', ['-a', base, repo]);
      const run = await job(['backup', repo, changed], { afterMs: randomInt(30, Math.max(60, Math.round(full.ms * 1.1))) });
      if (run.signal === 'SIGKILL') killed++;
      else expect(run.code, run.stderr).toBe(0);
      await resticCheck(repo);
      await keptSnapshotsIntact(repo);
      // The next backup completes (the killed one's lock is stale), and a prune collects what the killed one left.
      const next = await job(['backup', repo, changed]);
      expect(next.code, `backup after a backup killed after ${run.ms} ms: ${next.stderr}`).toBe(0);
      const again = await job(['prune', repo]);
      expect(again.code, again.stderr).toBe(0);
      await resticCheck(repo, true);
      await rm(repo, { recursive: true, force: true });
    }
    console.log(`backup (${full.ms} ms whole) killed ${killed} times`);
    expect(killed).toBeGreaterThanOrEqual(KILLS);
  }, LOOP_TIMEOUT);
});

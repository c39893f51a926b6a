/**
 * Whether the process that made a lock, a staging folder or a restore's work folder is gone:
 * against real processes (this one, a child that exited, init), and the shapes a marker read
 * back from disk may have.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { currentOwner, isGone, isProcessOwner } from '../src/process-owner.js';

const host = os.hostname();
const deadPid = () => Number(spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout);

describe('isGone', () => {
  it('this process is not gone, with or without its start time; one that exited is', () => {
    const me = currentOwner();
    expect(me).toEqual({ pid: process.pid, host, processStart: expect.stringMatching(/^\d+$/) });
    expect(isGone(me)).toBe(false);
    // Written by a version (or a system) that did not record start times.
    expect(isGone({ pid: process.pid, host })).toBe(false);
    expect(isGone({ pid: deadPid(), host })).toBe(true);
  });

  it('a live pid that started at another time is another process (the pid was reused)', () => {
    const me = currentOwner();
    expect(isGone({ ...me, processStart: String(Number(me.processStart) - 1) })).toBe(true);
  });

  it("another host's process is never gone, even when its pid is dead here", () => {
    expect(isGone({ pid: deadPid(), host: 'backup-host-2' })).toBe(false);
  });

  // Only a process's main thread may change its user: Stryker runs tests in worker threads.
  it.runIf(isMainThread)('a process of another user is alive to one who may not signal it', () => {
    // As an unprivileged user, signalling init fails with EPERM: it exists all the same.
    process.seteuid!(65534);
    let gone: boolean;
    try {
      gone = isGone({ pid: 1, host });
    } finally {
      process.seteuid!(0);
    }
    expect(gone).toBe(false);
  });
});

describe('isProcessOwner', () => {
  it('accepts a pid, a host and an optional start time', () => {
    expect(isProcessOwner({ pid: 12, host: 'h' })).toBe(true);
    expect(isProcessOwner({ pid: 12, host: 'h', processStart: '4711', extra: 1 })).toBe(true);
  });

  it.each([
    ['null', null],
    ['a string', 'pid 12'],
    ['no pid', { host: 'h' }],
    ['pid 0', { pid: 0, host: 'h' }],
    ['a negative pid', { pid: -1, host: 'h' }],
    ['a fractional pid', { pid: 1.5, host: 'h' }],
    ['a pid as text', { pid: '12', host: 'h' }],
    ['no host', { pid: 12 }],
    ['a host that is not text', { pid: 12, host: 7 }],
    ['a start time that is not text', { pid: 12, host: 'h', processStart: 4711 }],
  ])('refuses %s', (_, value) => {
    expect(isProcessOwner(value)).toBe(false);
  });
});

/**
 * A folder nothing new can be created in, even by root (the tests run as root, as CI does).
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

/**
 * Makes `dir` refuse new entries: immutable (chattr +i, where the file system and capabilities
 * allow it), else by running as an unprivileged user while the folder and its parent are root's
 * and not writable by others (only a process's main thread may change its user, and Stryker runs
 * tests in worker threads). `undo` puts things back.
 */
export async function makeUnwritable(dir: string): Promise<{ undo: () => Promise<void> }> {
  if (spawnSync('chattr', ['+i', dir]).status === 0) return { undo: async () => void spawnSync('chattr', ['-i', dir]) };
  if (!isMainThread) throw new Error('cannot make a folder unwritable here: no chattr +i, and a worker thread cannot change its user');
  await fsp.chmod(path.dirname(dir), 0o755);
  await fsp.chmod(dir, 0o755);
  process.seteuid!(65534);
  return { undo: async () => process.seteuid!(0) };
}

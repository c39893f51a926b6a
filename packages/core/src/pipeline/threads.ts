import { existsSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * The URL of a worker thread's module, beside the module that starts it. Threads run compiled
 * JavaScript only: when the caller runs from its TypeScript source (under the test runner), this is
 * the compiled file in dist/, which the build writes before any test runs. Undefined when that
 * file does not exist, so callers can do the work on their own thread instead.
 */
export function threadModule(name: string, from: string): URL | undefined {
  let url = new URL(`./${name}.js`, from);
  if (from.endsWith('.ts')) url = new URL(url.href.replace(/\/src\/(?!.*\/src\/)/, '/dist/'));
  return existsSync(fileURLToPath(url)) ? url : undefined;
}

/**
 * Lowers the calling thread's CPU priority (Linux: a thread is a task with its own nice value), so
 * that work done ahead or behind yields to the thread that does the backup itself.
 */
export function lowerThreadPriority(nice: number): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // Not Linux, or not allowed: the work only competes a little more.
  }
}

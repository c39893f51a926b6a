/**
 * TEST-ONLY fault injection. With `SUTAZAI_BACKUP_TEST_CRASH_AT=<point>` in its environment, a
 * run kills itself with SIGKILL at that point of the commit, so that a test can check what a
 * crash exactly there leaves behind (test/integration/commit-crash.test.ts). Nobody sets it in
 * production; unset (or any other value), it does nothing.
 *   after-manifest  the manifest is written in staging, the snapshot folder not yet renamed
 *   after-rename    the snapshot is in snapshots/, nothing replicated or pruned yet
 */
export type CrashPoint = 'after-manifest' | 'after-rename';

export const CRASH_AT_ENV = 'SUTAZAI_BACKUP_TEST_CRASH_AT';

export function crashPoint(point: CrashPoint): void {
  if (process.env[CRASH_AT_ENV] === point) process.kill(process.pid, 'SIGKILL');
}

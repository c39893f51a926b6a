import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const RESTIC_PASSWORD = 'test-password';

/** Runs the stock restic binary on a repository; resolves with its stdout. */
export async function restic(repo: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const { stdout } = await run('restic', ['-r', repo, '--no-cache', ...args], {
    cwd: options.cwd,
    env: { ...process.env, RESTIC_PASSWORD, ...options.env },
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'buffer',
  });
  return stdout.toString('utf8');
}

/** A tree blob restic stored, as raw bytes (`restic cat blob` prints it verbatim). */
export async function resticBlob(repo: string, id: string): Promise<Buffer> {
  const { stdout } = await run('restic', ['-r', repo, '--no-cache', 'cat', 'blob', id], {
    env: { ...process.env, RESTIC_PASSWORD },
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'buffer',
  });
  return stdout;
}

/** The newest snapshot restic lists, as `restic cat snapshot` prints it (0.14 has no `cat snapshot latest`). */
export async function latestSnapshot(repo: string): Promise<{ id: string; tree: string; paths: string[]; time: string; tags?: string[] }> {
  const list = JSON.parse(await restic(repo, ['snapshots', '--json'])) as { id: string; time: string }[];
  if (!list.length) throw new Error(`${repo} has no snapshots`);
  const newest = list.sort((a, b) => a.time.localeCompare(b.time)).at(-1)!;
  return { ...JSON.parse(await restic(repo, ['cat', 'snapshot', newest.id])), id: newest.id };
}

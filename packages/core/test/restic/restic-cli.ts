import { restic as runRestic } from '../../../../test/helpers/restic.js';

export const RESTIC_PASSWORD = 'test-password';

/** Runs stock restic on a repository (test/helpers/restic.ts); resolves with its stdout, throws if it failed. */
export async function restic(repo: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const result = await runRestic(repo, RESTIC_PASSWORD, args, env);
  if (result.code !== 0) throw new Error(`restic ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A blob as `restic cat blob` prints it (tree blobs are UTF-8 JSON, so the text is their bytes). */
export async function resticBlob(repo: string, id: string): Promise<Buffer> {
  return Buffer.from(await restic(repo, ['cat', 'blob', id]), 'utf8');
}

/** The newest snapshot restic lists, as `restic cat snapshot` prints it (0.14 has no `cat snapshot latest`). */
export async function latestSnapshot(repo: string): Promise<{ id: string; tree: string; paths: string[]; time: string; tags?: string[] }> {
  const list = JSON.parse(await restic(repo, ['snapshots', '--json'])) as { id: string; time: string }[];
  if (!list.length) throw new Error(`${repo} has no snapshots`);
  const newest = list.sort((a, b) => a.time.localeCompare(b.time)).at(-1)!;
  return { ...JSON.parse(await restic(repo, ['cat', 'snapshot', newest.id])), id: newest.id };
}

import { replicateAll } from '../replicator.js';
import type { Manifest } from '../manifest.js';
import type { BackupRun } from './backup-run.js';

/** replicate: every destination brought up to date; each that failed is its own error, the others' copies stand. */
export async function replicate(backup: BackupRun, manifest: Manifest): Promise<void> {
  const { ctx, run } = backup;
  if (!ctx.repositories.destinations.size) return;
  await backup
    .stage('replicate', async () => {
      const failures = await replicateAll(ctx, run, backup.logger);
      await ctx.hooks.replicate.promise({ run, source: ctx.repositories.local, manifest });
      if (failures.length) throw new AggregateError(failures, `replication failed at ${failures.map((f) => f.plugin).join(', ')}`);
    })
    .catch((err) => {
      for (const e of err instanceof AggregateError ? err.errors : [err]) backup.recordFailure('replicate', e);
    });
}

import { pruneOne } from '../prune-command.js';
import type { BackupRun } from './backup-run.js';

/** prune: retention at backupRoot and at each destination, except one whose replication failed in this run. */
export async function prune(backup: BackupRun): Promise<void> {
  const { ctx, run, report } = backup;
  await backup
    .stage('prune', async () => {
      const failed = new Set(report.destinations.filter((r) => r.status === 'failed').map((r) => r.name));
      for (const t of ctx.repositories.pruneTargets().filter((t) => !failed.has(t.name))) await pruneOne(ctx, t.repo, t.retention, false, backup.logger);
      await ctx.hooks.prune.promise({ run, dryRun: false, logger: backup.logger });
    })
    .catch((err) => backup.recordFailure('prune', err));
}

import { StagingArea } from '../staging.js';
import type { BackupRun } from './backup-run.js';

/**
 * Removes what interrupted runs left in backupRoot's staging/ (only called while holding the
 * lock); what the tool did not make there is reported and left alone.
 */
export async function cleanStaging(backup: BackupRun): Promise<void> {
  const area = new StagingArea(backup.ctx.config.backupRoot);
  const { removed, foreign } = await area.clean({ locked: true });
  for (const r of removed) backup.logger.debug(`removed ${r}, left by an interrupted run`);
  if (foreign.length) {
    const message = `${area.dir} holds ${foreign.length === 1 ? 'an entry' : `${foreign.length} entries`} this tool did not make, left alone: ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', ...' : ''}`;
    backup.logger.warn(message);
    backup.report.warnings.push(message);
  }
  // Nothing to clean under snapshots/: a snapshot folder gets there in one rename with its
  // manifest already inside, so a crash leaves none without one. A folder without a manifest
  // (copied there by hand) is not a snapshot: listing ignores it, and it is left alone.
}

import { BackupError } from '../errors.js';
import { restoreTest as testRestore } from '../restore-test.js';
import type { BackupRun } from './backup-run.js';

/** restoreTest (profiles with `restoreTest: true`): the new snapshot restored into a sandbox and checked. */
export async function restoreTest(backup: BackupRun): Promise<void> {
  if (!backup.profile.restoreTest) return;
  await backup
    .stage('restoreTest', async () => {
      const result = await testRestore(backup.ctx, { snapshot: backup.id });
      if (!result.ok) throw new BackupError('E_RESTORE_TEST', `restore test of ${backup.id} failed`);
    })
    .catch((err) => backup.recordFailure('restoreTest', err));
}

import { failedChecks } from '../checks.js';
import { mapLimit } from '../concurrency.js';
import { BackupError } from '../errors.js';
import type { Manifest } from '../manifest.js';
import type { SnapshotWriter } from '../repository-format.js';
import type { Scratch } from '../scratch.js';
import { verifyArtifact } from '../verify.js';
import type { BackupRun } from './backup-run.js';

/** verify: every artifact read back as written (or as a thread read it while it was written), before the commit. */
export async function verifyWritten(backup: BackupRun, writer: SnapshotWriter, manifest: Manifest, scratch: Scratch): Promise<void> {
  const { ctx, logger } = backup;
  await backup.stage('verify', async () => {
    const results = await mapLimit(backup.records, backup.concurrency, async (artifact) =>
      verifyArtifact(ctx, await writer.reader(manifest, artifact, { hooks: ctx.hooks, logger, scratch })),
    );
    const bad = results.filter((r) => !r.ok);
    if (bad.length) {
      throw new BackupError('E_VERIFY', `verification failed: ${bad.map((b) => `${b.file}: ${b.error ?? failedChecks(b)}`).join('; ')}`);
    }
  });
}

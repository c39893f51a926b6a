import { MANIFEST_FORMAT_VERSION, manifestBytes, type Manifest } from '../manifest.js';
import type { SnapshotWriter } from '../repository-format.js';
import { CORE_VERSION, TOOL_NAME } from '../version.js';
import type { BackupRun } from './backup-run.js';

/** The manifest of the run's snapshot, its `finishedAt` set at the commit. */
export function newManifest(backup: BackupRun): Manifest {
  return {
    formatVersion: MANIFEST_FORMAT_VERSION,
    id: backup.id,
    profile: backup.profile.name,
    host: backup.ctx.config.host,
    startedAt: backup.startedAt.toISOString(),
    finishedAt: '',
    tool: { name: TOOL_NAME, version: CORE_VERSION },
    artifacts: backup.records,
    // A partial snapshot says which sources it lacks, and why (redacted like the report).
    ...(backup.sources.failed.size ? { failedSources: backup.sources.records((m) => backup.ctx.secrets.redact(m)) } : {}),
  };
}

/** commit: plugins complete the manifest (an authenticator), and the snapshot comes to exist with it. */
export async function commit(backup: BackupRun, writer: SnapshotWriter, manifest: Manifest): Promise<void> {
  const { ctx, run, report } = backup;
  await backup.stage('commit', async () => {
    manifest.finishedAt = ctx.now().toISOString();
    await ctx.hooks.commit.promise({ run, manifest });
    await writer.commit(manifest);
    report.snapshot = backup.id;
    const lacking = manifest.failedSources?.map((f) => f.source) ?? [];
    backup.logger.info(
      `${lacking.length ? 'partial ' : ''}snapshot ${backup.id} committed: ${backup.records.length} artifact(s), ${manifestBytes(manifest)} bytes${lacking.length ? `; without the failed source(s) ${lacking.join(', ')}` : ''}`,
    );
  });
}

import type { BackupRun } from './backup-run.js';

/** collect: the sources say what to archive (the artifacts of this run); a source that says nothing is a warning. */
export async function collect(backup: BackupRun): Promise<void> {
  const { run, report } = backup;
  await backup.stage('collect', async () => {
    await backup.ctx.hooks.collect.promise({
      run,
      addArtifact: (source, plugin, spec) => backup.pending.push({ source, plugin, spec }),
    });
    for (const s of run.sources) {
      if (!backup.pending.some((p) => p.source === s)) report.warnings.push(`source ${s} produced no artifact`);
    }
  });
}

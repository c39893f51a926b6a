import type { BackupRun } from './backup-run.js';

/**
 * collect: the sources say what to archive (the artifacts of this run); a source that says nothing
 * is a warning. A source whose collect fails is a failed source (the others go on), unless the
 * profile is failFast; the run's timeout stops the stage.
 */
export async function collect(backup: BackupRun): Promise<void> {
  const { run, report, sources } = backup;
  await backup.stage('collect', async () => {
    const collecting = backup.ctx.hooks.collect.promise({
      run,
      addArtifact: (source, plugin, spec) => backup.pending.push({ source, plugin, spec }),
      sourceFailed: (source, error) => {
        sources.fail(source, error);
        if (sources.failFast) throw error;
        backup.logger.error(`source ${source} failed: ${backup.ctx.secrets.redact(error.message)}`, { plugin: `sources.${source}` });
      },
    });
    await untilAborted(collecting, sources.deadline);
    for (const s of run.sources) {
      if (!sources.isFailed(s) && !backup.pending.some((p) => p.source === s)) report.warnings.push(`source ${s} produced no artifact`);
    }
  });
}

/** `work`, or the signal's reason as soon as it is aborted (a hook that ignores the signal must not hold the run). */
async function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw signal.reason;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', (onAbort = () => reject(signal.reason)), { once: true }));
  work.catch(() => undefined);
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

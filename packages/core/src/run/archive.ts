import { mapLimit } from '../concurrency.js';
import { BackupError, isBackupError } from '../errors.js';
import type { ArchiveTransform } from '../hooks.js';
import type { ArtifactRecord } from '../manifest.js';
import { openSourceOutput, type SourceOutput } from '../pipeline/source-stream.js';
import { rootFailures } from '../report.js';
import type { SnapshotWriter } from '../repository-format.js';
import type { BackupRun, PendingArtifact } from './backup-run.js';
import { sourceLimits } from './source-outcomes.js';

/**
 * archive: every artifact into the snapshot being written, a few at a time, sources of higher
 * `priority` first. A failed artifact fails its source: the source's other artifacts stop, the
 * other sources go on, and the snapshot is partial. With `failFast`, or when the run itself is
 * stopped, the first failure aborts everything; each root cause is reported once.
 */
export async function archive(backup: BackupRun, writer: SnapshotWriter): Promise<void> {
  const { sources } = backup;
  await backup.stage('archive', async () => {
    const names = new Set<string>();
    for (const p of backup.pending) {
      if (names.has(p.spec.name)) throw new BackupError('E_SOURCE', `two artifacts are named ${p.spec.name}`, { plugin: `sources.${p.source}` });
      names.add(p.spec.name);
    }
    const ordered = byPriority(backup.pending, (s) => sourceLimits(backup.ctx.config, s).priority);
    const outcomes = await mapLimit(ordered, backup.concurrency, async (p): Promise<{ record?: ArtifactRecord; error?: BackupError }> => {
      if (sources.isFailed(p.source)) return {};
      const signal = sources.signal(p.source);
      try {
        signal.throwIfAborted();
        return { record: await archiveArtifact(backup, writer, p, signal) };
      } catch (err) {
        const error = isBackupError(err) ? err : new BackupError('E_ARCHIVE', (err as Error).message, { cause: err });
        error.plugin ??= `sources.${p.source}`;
        error.stage ??= 'archive';
        return { error: sources.fail(p.source, error) };
      }
    });
    const errors = outcomes.flatMap((o) => (o.error ? [o.error] : []));
    if (sources.failFast || backup.abort.signal.aborted) {
      const roots = rootFailures(errors, backup.abort.signal.reason);
      for (const e of roots.slice(1)) backup.recordFailure('archive', e);
      if (roots.length) throw roots[0]!;
    }
    const kept = outcomes.flatMap((o) => (o.record && !sources.isFailed(o.record.source) ? [o.record] : []));
    const failed = [...sources.failed.values()];
    // Every source failed: there is nothing to commit.
    if (!kept.length && failed.length) {
      for (const e of failed.slice(1)) backup.recordFailure('archive', e);
      throw failed[0]!;
    }
    for (const e of failed) backup.recordFailure(e.stage === 'collect' ? 'collect' : 'archive', e);
    backup.records.push(...kept);
    const report = backup.report.artifacts;
    report.splice(0, report.length, ...report.filter((a) => !sources.isFailed(a.source)));
  });
}

/** Artifacts of higher-priority sources first; otherwise in the order the sources gave them. */
function byPriority(pending: readonly PendingArtifact[], priority: (source: string) => number): PendingArtifact[] {
  return pending
    .map((p, i) => ({ p, i, rank: priority(p.source) }))
    .sort((a, b) => b.rank - a.rank || a.i - b.i)
    .map((x) => x.p);
}

/** One artifact: the encryption plugins' stages, the source's bytes into the writer, the manifest record. */
async function archiveArtifact(backup: BackupRun, writer: SnapshotWriter, p: PendingArtifact, signal: AbortSignal): Promise<ArtifactRecord> {
  const { ctx, run } = backup;
  const t0 = Date.now();
  const { spec } = p;
  const plugin = `sources.${p.source}`;
  const logger = run.logger.child({ plugin });
  const transforms: ArchiveTransform[] = [];
  await ctx.hooks.archive.promise({ run, source: p.source, plugin: p.plugin, spec, addTransform: (t) => transforms.push(t) });
  const tempDir = await writer.workDir(spec.name);
  let output: SourceOutput | undefined;
  if (spec.type === 'file') output = await openSourceOutput(spec, { tempDir, signal, logger }, { plugin, secrets: ctx.secrets });
  const task = `${p.source}:${spec.name}`;
  const stored = await writer
    .writeArtifact({
      source: p.source,
      spec,
      ...(output ? { stream: output.stream } : {}),
      transforms,
      logger,
      signal,
      onProgress: (bytes) => ctx.progress.update(task, bytes),
      onWarning: (message, at) => {
        logger.warn(`${at}: ${message}`);
        run.report.warnings.push(`${plugin}: ${at}: ${message}`);
      },
    })
    .finally(() => ctx.progress.done(task));
  const extra = output?.done ? await output.done : undefined;
  output?.checkConsumed(stored.rawBytes);
  if (spec.type === 'file' && stored.rawBytes === 0 && !spec.allowEmpty) {
    throw new BackupError('E_SOURCE', `${plugin}: ${spec.name} produced no data`, { plugin, stage: 'archive' });
  }
  const record: ArtifactRecord = {
    source: p.source,
    plugin: p.plugin,
    file: stored.file,
    type: spec.type,
    ...(spec.type === 'file' ? { filename: spec.filename } : {}),
    bytes: stored.bytes,
    sha256: stored.sha256,
    rawBytes: stored.rawBytes,
    compression: stored.compression,
    encryption: stored.encryption,
    meta: ctx.secrets.redactDeep({ ...spec.meta, ...(extra ?? {}), ...(stored.entries ? { entries: stored.entries } : {}) }),
  };
  run.report.artifacts.push({ source: p.source, plugin: p.plugin, file: stored.file, bytes: stored.bytes, rawBytes: stored.rawBytes, sha256: stored.sha256, durationMs: Date.now() - t0 });
  logger.info(`archived ${stored.file}: ${stored.rawBytes} bytes -> ${stored.bytes} bytes`);
  return record;
}

import { mapLimit } from '../concurrency.js';
import { BackupError, isBackupError } from '../errors.js';
import type { ArchiveTransform } from '../hooks.js';
import type { ArtifactRecord } from '../manifest.js';
import { openSourceOutput, type SourceOutput } from '../pipeline/source-stream.js';
import { rootFailures } from '../report.js';
import type { SnapshotWriter } from '../repository-format.js';
import type { BackupRun, PendingArtifact } from './backup-run.js';

/**
 * archive: every artifact into the snapshot being written, a few at a time. The first failure
 * aborts the others; each root cause is reported once.
 */
export async function archive(backup: BackupRun, writer: SnapshotWriter): Promise<void> {
  await backup.stage('archive', async () => {
    const names = new Set<string>();
    for (const p of backup.pending) {
      if (names.has(p.spec.name)) throw new BackupError('E_SOURCE', `two artifacts are named ${p.spec.name}`, { plugin: `sources.${p.source}` });
      names.add(p.spec.name);
    }
    const outcomes = await mapLimit(backup.pending, backup.concurrency, async (p) => {
      try {
        return { record: await archiveArtifact(backup, writer, p) };
      } catch (err) {
        const error = isBackupError(err) ? err : new BackupError('E_ARCHIVE', (err as Error).message, { cause: err });
        error.plugin ??= `sources.${p.source}`;
        error.stage ??= 'archive';
        backup.abort.abort(error);
        return { error };
      }
    });
    const roots = rootFailures(
      outcomes.flatMap((o) => (o.error ? [o.error] : [])),
      backup.abort.signal.reason,
    );
    for (const e of roots.slice(1)) backup.recordFailure('archive', e);
    if (roots.length) throw roots[0]!;
    backup.records.push(...outcomes.map((o) => o.record!));
  });
}

/** One artifact: the encryption plugins' stages, the source's bytes into the writer, the manifest record. */
async function archiveArtifact(backup: BackupRun, writer: SnapshotWriter, p: PendingArtifact): Promise<ArtifactRecord> {
  const { ctx, run } = backup;
  const t0 = Date.now();
  const { spec } = p;
  const plugin = `sources.${p.source}`;
  const logger = run.logger.child({ plugin });
  const transforms: ArchiveTransform[] = [];
  await ctx.hooks.archive.promise({ run, source: p.source, plugin: p.plugin, spec, addTransform: (t) => transforms.push(t) });
  const tempDir = await writer.workDir(spec.name);
  let output: SourceOutput | undefined;
  if (spec.type === 'file') output = await openSourceOutput(spec, { tempDir, signal: run.signal, logger }, { plugin, secrets: ctx.secrets });
  const task = `${p.source}:${spec.name}`;
  const stored = await writer
    .writeArtifact({
      source: p.source,
      spec,
      ...(output ? { stream: output.stream } : {}),
      transforms,
      logger,
      signal: run.signal,
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

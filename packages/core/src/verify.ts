import { mapLimit } from './concurrency.js';
import { failedChecks, type CheckResult } from './checks.js';
import { recordHistory, type EngineContext } from './context.js';
import { BackupError } from './errors.js';
import type { Manifest } from './manifest.js';
import { verifyContext } from './plugin-contexts.js';
import type { ReadableArtifact, SnapshotRepository } from './repository-format.js';
import { Scratch } from './scratch.js';
import { artifactFailureKind, manifestFailureKind, type VerifyFailure } from './suspects.js';

export interface ArtifactVerification {
  snapshot: string;
  source: string;
  file: string;
  ok: boolean;
  error?: string;
  /** Why it failed (a diagnosis for `status`; no failure alone makes retention delete). */
  failure?: VerifyFailure['kind'];
  checks: CheckResult[];
}

export interface VerifyResult {
  repository: string;
  ok: boolean;
  snapshots: SnapshotVerification[];
}

export interface SnapshotVerification {
  id: string;
  ok: boolean;
  error?: string;
  failure?: VerifyFailure;
  artifacts: ArtifactVerification[];
}

export interface VerifyOptions {
  snapshot?: string;
  all?: boolean;
  from?: string;
}

/**
 * Re-reads an artifact: the repository format's checks (size, sha256, decoding, every tar
 * header), then plugins' deep checks. Never throws: a failure is the result's `error` and `failure`.
 */
export async function verifyArtifact(ctx: Pick<EngineContext, 'hooks' | 'secrets'>, reader: ReadableArtifact): Promise<ArtifactVerification> {
  const { artifact, manifest } = reader;
  const result: ArtifactVerification = { snapshot: manifest.id, source: artifact.source, file: artifact.file, ok: true, checks: [] };
  try {
    const undecodable = await reader.undecodable();
    if (undecodable) {
      result.checks.push(...(await reader.checkStored()), { name: 'decode', ok: true, detail: `not decoded on this host: ${undecodable}` });
      return result;
    }
    // Plugins' deep checks read the artifact on their own (with the same size and sha256
    // checks): they run beside the decoding, and count only if it succeeds.
    const deepChecks: CheckResult[] = [];
    const deep = ctx.hooks.verify.promise(verifyContext(reader, (name, ok, detail) => deepChecks.push({ name, ok, ...(detail ? { detail } : {}) })));
    deep.catch(() => {});
    try {
      result.checks.push(...(await reader.check()));
    } catch (err) {
      await deep.catch(() => {});
      throw err;
    }
    await deep;
    result.checks.push(...deepChecks);
    result.ok = result.checks.every((c) => c.ok);
  } catch (err) {
    const explained = await reader.explain(err);
    result.ok = false;
    result.error = ctx.secrets.redact(explained.message);
    result.failure = artifactFailureKind(err, explained);
  }
  return result;
}

/** `verify`: every artifact of one snapshot (or of all) at one repository, recorded in the history. */
export async function verifySnapshots(ctx: EngineContext, options: VerifyOptions = {}): Promise<VerifyResult> {
  const repo = ctx.repositories.at(options.from);
  const startedAt = ctx.now();
  const scratch = new Scratch(ctx.config.backupRoot);
  const result: VerifyResult = { repository: repo.name, ok: true, snapshots: [] };
  try {
    const ids = options.all ? await repo.snapshotIds() : [await repo.resolveId(options.snapshot ?? 'latest')];
    if (options.all && ids.length === 0) throw new BackupError('E_NOT_FOUND', `${repo.description} holds no snapshots`);
    for (const id of ids) result.snapshots.push(await verifySnapshot(ctx, repo, id, scratch));
  } finally {
    await scratch.dispose();
  }
  result.ok = result.snapshots.every((s) => s.ok);
  await recordHistory(
    ctx,
    {
      kind: 'verify',
      status: result.ok ? 'success' : 'failed',
      startedAt: startedAt.toISOString(),
      finishedAt: ctx.now().toISOString(),
      repository: repo.name,
      snapshots: result.snapshots.map((s) => ({ id: s.id, ok: s.ok, ...(s.failure ? { failure: s.failure } : {}) })),
    },
    'the verification',
  );
  return result;
}

async function verifySnapshot(ctx: EngineContext, repo: SnapshotRepository, id: string, scratch: Scratch): Promise<SnapshotVerification> {
  const { logger } = ctx;
  let manifest: Manifest | undefined;
  try {
    manifest = await repo.readManifest(id);
    await ctx.hooks.checkManifest.promise({ repository: repo, manifest, purpose: 'verify', logger });
  } catch (err) {
    const error = ctx.secrets.redact((err as Error).message);
    logger.error(`FAILED ${id}: ${error}`);
    return { id, ok: false, error, failure: { kind: manifestFailureKind(err, manifest !== undefined), error }, artifacts: [] };
  }
  const checked = manifest;
  const artifacts = await mapLimit(checked.artifacts, ctx.config.concurrency, async (artifact) =>
    verifyArtifact(ctx, await repo.reader(checked, artifact, { hooks: ctx.hooks, logger, scratch })),
  );
  const bad = artifacts.find((a) => !a.ok);
  for (const a of artifacts) {
    if (a.ok) logger.info(`ok ${id}/${a.file}`, { checks: a.checks.map((c) => c.name).join(',') });
    else logger.error(`FAILED ${id}/${a.file}: ${a.error ?? failedChecks(a)}`);
  }
  return {
    id,
    ok: !bad,
    ...(bad ? { failure: { kind: bad.failure ?? 'integrity', error: `${bad.file}: ${bad.error ?? failedChecks(bad)}` } } : {}),
    artifacts,
  };
}

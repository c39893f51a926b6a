import type { EngineContext } from './context.js';
import { BackupError } from './errors.js';
import type { ManifestPurpose } from './hooks.js';
import type { Manifest } from './manifest.js';
import type { ReadableArtifact, SnapshotRepository } from './repository-format.js';
import type { Scratch } from './scratch.js';

export interface OpenedSnapshot {
  id: string;
  manifest: Manifest;
  readers: ReadableArtifact[];
}

/**
 * Opens a snapshot to restore or restore-test from: resolves `latest` or a prefix, reads the
 * manifest and lets plugins authenticate it, and makes a reader for each artifact (of `sources`
 * only, when given).
 */
export async function openSnapshot(
  ctx: EngineContext,
  repo: SnapshotRepository,
  snapshot: string,
  sources: readonly string[] | undefined,
  scratch: Scratch,
  purpose: ManifestPurpose,
): Promise<OpenedSnapshot> {
  const id = await repo.resolveId(snapshot);
  const manifest = await repo.readManifest(id);
  await ctx.hooks.checkManifest.promise({ repository: repo, manifest, purpose, logger: ctx.logger });
  const known = [...new Set(manifest.artifacts.map((a) => a.source))];
  for (const s of sources ?? []) {
    if (!known.includes(s)) throw new BackupError('E_USAGE', `snapshot ${id} has no source "${s}" (its sources: ${known.join(', ')})`);
  }
  const artifacts = manifest.artifacts.filter((a) => !sources?.length || sources.includes(a.source));
  const use = { hooks: ctx.hooks, logger: ctx.logger, scratch };
  return { id, manifest, readers: await Promise.all(artifacts.map((artifact) => repo.reader(manifest, artifact, use))) };
}

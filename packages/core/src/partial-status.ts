import type { HistoryRecord } from './history.js';
import { failedSources } from './manifest.js';
import type { SnapshotRepository } from './repository-format.js';

/** The newest snapshot when it is partial: the sources it lacks, for `status`. */
export interface PartialSnapshot {
  snapshot: string;
  failedSources: string[];
}

/** `latest`'s failed sources when it is a partial snapshot, else null (also when its manifest cannot be read: verify says why). */
export async function latestPartial(repo: SnapshotRepository, latest: string | null): Promise<PartialSnapshot | null> {
  if (!latest) return null;
  const manifest = await repo.readManifest(latest).catch(() => undefined);
  const failed = manifest ? failedSources(manifest).map((f) => f.source) : [];
  return failed.length ? { snapshot: latest, failedSources: failed } : null;
}

/** For the last-run check's detail: `; partial snapshot without postgres` when the run committed one. */
export function partialRunNote(run: HistoryRecord): string {
  const failed = Array.isArray(run.failedSources) ? (run.failedSources as string[]) : [];
  return run.snapshot && failed.length ? `; partial snapshot without ${failed.join(', ')}` : '';
}

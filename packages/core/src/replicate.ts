import { BackupError } from './errors.js';
import type { ObjectInfo } from './destination.js';
import type { Logger } from './log.js';
import { MANIFEST_FILE, type Manifest } from './manifest.js';
import { MARKER_FILE, snapshotKey, wrapDestinationError, type Repository } from './repository.js';
import { DEFAULT_RETRY, withRetry, type RetryOptions } from './retry.js';

export { DEFAULT_RETRY, isTransient, retryingDestination, RetryingDestination, withRetry, type RetryOptions } from './retry.js';

export interface CopyResult {
  sent: number;
  skipped: number;
  bytes: number;
}

/**
 * Copies one snapshot: the marker (so an interrupted copy is recognised as the tool's own), each
 * artifact that the target lacks (or holds with another size), then the manifest, so the
 * snapshot exists at the target only once it is whole, and the marker is removed.
 */
export async function copySnapshot(
  from: Repository,
  to: Repository,
  manifest: Manifest,
  existing: ReadonlyMap<string, ObjectInfo>,
  options: { retry?: RetryOptions; logger?: Logger; at?: Date } = {},
): Promise<CopyResult> {
  const result: CopyResult = { sent: 0, skipped: 0, bytes: 0 };
  const retry = { ...DEFAULT_RETRY, ...options.retry, ...(options.logger ? { logger: options.logger } : {}) };
  const hasManifest = existing.has(snapshotKey(manifest.id, MANIFEST_FILE));
  const markerKey = snapshotKey(manifest.id, MARKER_FILE);
  if (!hasManifest) {
    await withRetry(
      async () => {
        try {
          await to.putMarker(manifest.id, 'uploading', options.at ?? new Date());
        } catch (err) {
          throw wrapDestinationError(err, to, `writing ${markerKey}`);
        }
      },
      { ...retry, what: `${to.name}: upload of ${markerKey}` },
    );
  }
  for (const artifact of manifest.artifacts) {
    const key = snapshotKey(manifest.id, artifact.file);
    if (existing.get(key)?.size === artifact.bytes) {
      result.skipped++;
      continue;
    }
    options.logger?.debug(`sending ${key} (${artifact.bytes} bytes)`);
    await withRetry(
      async () => {
        const body = await from.openArtifact(manifest.id, artifact.file);
        try {
          await to.destination.put(key, body, { size: artifact.bytes, sha256: artifact.sha256 });
        } catch (err) {
          body.destroy();
          throw wrapDestinationError(err, to, `uploading ${key}`);
        }
        // A destination that lost bytes on the way must not get the manifest that vouches for them.
        const stored = await to.destination.stat(key).catch((err) => {
          throw wrapDestinationError(err, to, `checking ${key}`);
        });
        if (stored?.size !== artifact.bytes) {
          throw new BackupError('E_DESTINATION', `${to.name}: ${key} holds ${stored ? `${stored.size} bytes` : 'nothing'} after the upload, expected ${artifact.bytes}`);
        }
      },
      { ...retry, what: `${to.name}: upload of ${key}` },
    );
    result.sent++;
    result.bytes += artifact.bytes;
  }
  if (hasManifest) {
    result.skipped++;
    return result;
  }
  await withRetry(() => to.putManifest(manifest), { ...retry, what: `${to.name}: upload of ${manifest.id}/${MANIFEST_FILE}` });
  result.sent++;
  // The snapshot is whole: a marker left behind (this failing) is only untidy, and the next delete replaces it.
  await to.removeMarker(manifest.id).catch((err) => options.logger?.warn(`${to.name}: could not remove ${markerKey}: ${(err as Error).message}`));
  return result;
}

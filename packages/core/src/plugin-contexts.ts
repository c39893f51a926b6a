/**
 * The contexts the verify, restore and restoreTest hooks hand to plugins: plain frozen objects
 * that expose what hooks.ts promises (ArtifactAccess and the hook's own fields) and nothing of
 * the reader behind them, whose state stays private.
 */
import type { ArtifactAccess, RestoreIntoContext, RestoreTestContext, VerifyContext } from './hooks.js';
import type { ReadableArtifact } from './repository-format.js';

type AddCheck = (name: string, ok: boolean, detail?: string) => void;

function artifactAccess(reader: ReadableArtifact): ArtifactAccess {
  return {
    repository: reader.repository,
    manifest: reader.manifest,
    artifact: reader.artifact,
    logger: reader.logger,
    openDecoded: () => reader.openDecoded(),
    materialize: () => reader.materialize(),
    tempDir: () => reader.tempDir(),
  };
}

export function verifyContext(reader: ReadableArtifact, addCheck: AddCheck): VerifyContext {
  return Object.freeze({ ...artifactAccess(reader), addCheck });
}

export function restoreIntoContext(reader: ReadableArtifact, target: { into: string; database: string | undefined; clean: boolean }): RestoreIntoContext {
  return Object.freeze({ ...artifactAccess(reader), into: target.into, database: target.database, clean: target.clean });
}

export function restoreTestContext(reader: ReadableArtifact, restoredPath: string, addCheck: AddCheck): RestoreTestContext {
  return Object.freeze({ ...artifactAccess(reader), restoredPath, addCheck });
}

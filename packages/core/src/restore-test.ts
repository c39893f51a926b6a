import path from 'node:path';
import { failedChecks, type CheckResult } from './checks.js';
import { recordHistory, type EngineContext } from './context.js';
import type { TreeStats } from './pipeline/tar-extract.js';
import { restoreTestContext } from './plugin-contexts.js';
import type { ReadableArtifact } from './repository-format.js';
import { restoreToDir } from './restore.js';
import { Scratch } from './scratch.js';
import { openSnapshot } from './snapshot-readers.js';

export interface RestoreTestResult {
  snapshot: string;
  repository: string;
  ok: boolean;
  artifacts: ArtifactRestoreTest[];
}

export interface ArtifactRestoreTest {
  source: string;
  file: string;
  ok: boolean;
  error?: string;
  checks: CheckResult[];
}

/** Restores a snapshot into a private sandbox and checks it: generic checks, then each source's own. */
export async function restoreTest(ctx: EngineContext, options: { snapshot?: string; from?: string } = {}): Promise<RestoreTestResult> {
  const repo = ctx.repositories.at(options.from ?? ctx.config.checks.restoreTest?.from);
  const startedAt = ctx.now();
  const scratch = new Scratch(ctx.config.backupRoot);
  let result: RestoreTestResult | undefined;
  try {
    const { id, readers } = await openSnapshot(ctx, repo, options.snapshot ?? 'latest', undefined, scratch, 'restore-test');
    const sandbox = await scratch.dir(`restore-test-${id}`);
    result = { snapshot: id, repository: repo.name, ok: true, artifacts: [] };
    for (const reader of readers) {
      const entry = await testArtifact(ctx, reader, sandbox);
      if (entry.ok) ctx.logger.info(`restore test ok: ${id}/${entry.file}`);
      else ctx.logger.error(`restore test FAILED: ${id}/${entry.file}: ${entry.error ?? failedChecks(entry)}`);
      result.artifacts.push(entry);
    }
    result.ok = result.artifacts.every((a) => a.ok);
    return result;
  } finally {
    await scratch.dispose();
    await recordHistory(
      ctx,
      {
        kind: 'restore-test',
        status: result?.ok ? 'success' : 'failed',
        startedAt: startedAt.toISOString(),
        finishedAt: ctx.now().toISOString(),
        repository: repo.name,
        snapshot: result?.snapshot ?? null,
      },
      'the restore test',
    );
  }
}

async function testArtifact(ctx: EngineContext, reader: ReadableArtifact, sandbox: string): Promise<ArtifactRestoreTest> {
  const { artifact } = reader;
  const entry: ArtifactRestoreTest = { source: artifact.source, file: artifact.file, ok: true, checks: [] };
  try {
    const into = path.join(sandbox, artifact.file);
    const [restored] = artifact.type === 'tree' && reader.restoreTree ? [await reader.restoreTree(into)] : await restoreToDir([reader], into, {});
    entry.checks.push({ name: 'restore', ok: true, detail: restored!.path });
    const expected = artifact.meta.entries as TreeStats | undefined;
    if (artifact.type === 'tree' && expected && restored!.stats) {
      const got = restored!.stats;
      const same = got.files === expected.files && got.directories === expected.directories && got.symlinks === expected.symlinks;
      entry.checks.push({
        name: 'entries',
        ok: same,
        detail: `${got.files} files, ${got.directories} folders, ${got.symlinks} symlinks (manifest: ${expected.files}, ${expected.directories}, ${expected.symlinks})`,
      });
    }
    await ctx.hooks.restoreTest.promise(
      restoreTestContext(reader, restored!.path, (name, ok, detail) => entry.checks.push({ name, ok, ...(detail ? { detail } : {}) })),
    );
    entry.ok = entry.checks.every((c) => c.ok);
  } catch (err) {
    entry.ok = false;
    entry.error = ctx.secrets.redact((err as Error).message);
  }
  return entry;
}

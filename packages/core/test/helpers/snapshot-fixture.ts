/**
 * A committed snapshot in a real repository folder, written the way a run leaves it (artifacts,
 * then the manifest with their sizes and sha256), and the readers a restore gets for it.
 * Artifacts are stored uncompressed: what is under test is where the restore puts them.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { create as createTar } from 'tar';
import { LocalDestination } from '../../src/destination.js';
import { createHooks } from '../../src/hooks.js';
import type { Logger } from '../../src/log.js';
import type { ArtifactRecord, Manifest } from '../../src/manifest.js';
import { ArtifactReader } from '../../src/reader.js';
import { Scratch } from '../../src/scratch.js';
import { Repository } from '../../src/repository.js';

export type FixtureArtifact =
  | { source: string; type: 'tree'; from: string; meta?: Record<string, unknown> }
  | { source: string; type: 'file'; content: string | Buffer; filename?: string };

/** A tar of the folder `from`, entries relative to it (`./a.txt`), owners and modes kept. */
export async function tarOf(from: string): Promise<Buffer> {
  const file = path.join(await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-fixture-tar-')), 'tree.tar');
  try {
    createTar({ cwd: from, file, sync: true }, ['.']);
    return await fsp.readFile(file);
  } finally {
    await fsp.rm(path.dirname(file), { recursive: true, force: true });
  }
}

/** Writes the snapshot `id` under `root` and resolves with a reader per artifact. */
export async function writeSnapshot(root: string, id: string, artifacts: FixtureArtifact[], logger: Logger): Promise<ArtifactReader[]> {
  const repository = new Repository(new LocalDestination(root), 'backupRoot');
  const records: ArtifactRecord[] = [];
  for (const a of artifacts) {
    const body = a.type === 'tree' ? await tarOf(a.from) : Buffer.from(a.content);
    const file = a.type === 'tree' ? `${a.source}.tar` : `${a.source}.dump`;
    await repository.destination.put(`snapshots/${id}/${file}`, Readable.from([body]));
    records.push({
      source: a.source,
      plugin: a.type === 'tree' ? 'files' : 'command',
      file,
      type: a.type,
      ...(a.type === 'file' && a.filename ? { filename: a.filename } : {}),
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      rawBytes: body.length,
      compression: 'none',
      encryption: null,
      meta: a.type === 'tree' ? (a.meta ?? {}) : {},
    });
  }
  const manifest: Manifest = {
    formatVersion: 1,
    id,
    profile: id.split('-')[1]!,
    host: os.hostname(),
    startedAt: '2026-11-26T02:00:00.000Z',
    finishedAt: '2026-11-26T02:00:05.000Z',
    tool: { name: 'sutazai-backup', version: '0.1.0' },
    artifacts: records,
  };
  await repository.putManifest(manifest);
  const hooks = createHooks();
  const scratch = new Scratch(root);
  return manifest.artifacts.map((artifact) => new ArtifactReader({ hooks, repository, manifest, artifact, logger, scratch }));
}

import { createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BackupError } from './errors.js';
import { DIR_MODE, ensureDir, FILE_MODE, isEmptyDir, pathExists } from './fs.js';
import { isSourceName } from './manifest.js';
import { symlinksStayInside, type TreeStats } from './pipeline/tar-extract.js';
import { TreeWriter } from './pipeline/tree-writer.js';
import type { ArtifactReader } from './reader.js';

export interface RestoredArtifact {
  source: string;
  file: string;
  /** Where it landed: the tree's folder (`DIR/<source>`) or the file (`DIR/<source>/<filename>`). */
  path: string;
  stats?: TreeStats;
}

export interface RestoreToDirOptions {
  /** Overwrite a non-empty `DIR/<source>`. */
  force?: boolean;
  preserveOwner?: boolean;
}

/**
 * Restores artifacts under `dir`: each source's into `dir/<source>/`. Every artifact is first
 * decoded, checked and extracted into a private folder inside `dir`; only when all of them
 * passed are they moved into place, so a corrupt artifact leaves the target untouched.
 */
export async function restoreToDir(readers: ArtifactReader[], dir: string, options: RestoreToDirOptions = {}): Promise<RestoredArtifact[]> {
  const target = path.resolve(dir);
  const sources = [...new Set(readers.map((r) => r.artifact.source))];
  for (const source of sources) {
    if (!isSourceName(source)) throw new BackupError('E_RESTORE', `refused source name ${JSON.stringify(source)}: not a plain name`);
    const sourceDir = path.join(target, source);
    if (!options.force && !(await isEmptyDir(sourceDir))) {
      throw new BackupError('E_RESTORE', `${sourceDir} is not empty: restore into an empty folder, or pass --force to overwrite`);
    }
  }
  await checkFreeSpace(target, readers.reduce((sum, r) => sum + r.artifact.rawBytes, 0));
  // Folders this restore made: removed again if it fails, so a failed restore leaves no trace.
  const created = await ensureDir(target);
  let work: string | undefined;
  try {
    work = await fsp.mkdtemp(path.join(target, '.sutazai-restore-'));
    await fsp.chmod(work, DIR_MODE);
    const staged: RestoredArtifact[] = [];
    for (const reader of readers) staged.push(await stageArtifact(reader, work, options));
    const moved: RestoredArtifact[] = [];
    for (const source of sources) {
      const from = path.join(work, source);
      const to = path.join(target, source);
      await moveInto(from, to);
      for (const s of staged.filter((a) => a.source === source)) moved.push({ ...s, path: path.join(to, path.relative(from, s.path)) });
    }
    created.length = 0;
    return moved;
  } finally {
    if (work) await fsp.rm(work, { recursive: true, force: true });
    for (const d of created.reverse()) await fsp.rmdir(d).catch(() => {});
  }
}

/** Refuses a restore that cannot fit: the decoded size of the artifacts against the free space where they go. */
export async function checkFreeSpace(target: string, needed: number): Promise<void> {
  let at = target;
  while (!(await pathExists(at)) && path.dirname(at) !== at) at = path.dirname(at);
  const fs = await fsp.statfs(at).catch(() => undefined);
  if (!fs) return;
  const free = fs.bavail * fs.bsize;
  if (needed > free) {
    throw new BackupError('E_RESTORE', `not enough space at ${at}: the restore needs ${needed} bytes, ${free} are free; nothing was restored`, {
      details: { needed, free },
    });
  }
}

async function stageArtifact(reader: ArtifactReader, work: string, options: RestoreToDirOptions): Promise<RestoredArtifact> {
  const { artifact } = reader;
  const sourceDir = path.join(work, artifact.source);
  await ensureDir(sourceDir);
  if (artifact.type === 'tree') {
    const recorded = artifact.meta.entries as Partial<TreeStats> | undefined;
    const writer = new TreeWriter(sourceDir, {
      label: reader.label,
      ...(options.preserveOwner ? { preserveOwner: true } : {}),
      ...(typeof recorded?.bytes === 'number' ? { maxBytes: recorded.bytes } : {}),
    });
    let stats: TreeStats;
    try {
      await reader.readDecoded((data) => writer.update(data));
      stats = writer.finish();
      await symlinksStayInside(sourceDir, writer.symlinks, reader.label);
      if (writer.rewrittenSymlinks) reader.logger.warn(`${reader.label}: ${writer.rewrittenSymlinks} absolute symlink(s) rewritten to point inside the restored tree`);
    } catch (err) {
      writer.abort();
      throw err instanceof BackupError && err.code === 'E_RESTORE' ? err : await reader.explain(err);
    }
    return { source: artifact.source, file: artifact.file, path: sourceDir, stats };
  }
  const decoded = await reader.openDecoded();
  const name = artifact.filename ?? artifact.file;
  if (name.includes('/') || name === '..' || name === '.') {
    throw new BackupError('E_RESTORE', `${reader.label}: refused file name ${JSON.stringify(name)}`);
  }
  const file = path.join(sourceDir, name);
  try {
    await pipeline(decoded, createWriteStream(file, { flags: 'wx', mode: FILE_MODE }));
  } catch (err) {
    throw await reader.explain(err);
  }
  await fsp.chmod(file, FILE_MODE);
  return { source: artifact.source, file: artifact.file, path: file };
}

/** Moves a staged folder into place: a rename when the target is missing or empty, else entry by entry. */
async function moveInto(from: string, to: string): Promise<void> {
  if (!(await pathExists(to))) {
    await ensureDir(path.dirname(to));
    await fsp.rename(from, to);
    return;
  }
  if (await isEmptyDir(to)) {
    await fsp.rmdir(to);
    await fsp.rename(from, to);
    return;
  }
  // --force: replace each top-level entry.
  for (const name of await fsp.readdir(from)) {
    const dest = path.join(to, name);
    await fsp.rm(dest, { recursive: true, force: true });
    await fsp.rename(path.join(from, name), dest);
  }
}

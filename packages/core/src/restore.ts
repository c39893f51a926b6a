import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BackupError } from './errors.js';
import { ensureDir, isEmptyDir, openPrivate, pathExists } from './fs.js';
import { isSourceName, joinPlainName } from './manifest.js';
import { PathSelection } from './pipeline/path-selection.js';
import { pathParts, type TreeStats } from './pipeline/tar-extract.js';
import { extractTree, TreeWriter } from './pipeline/tree-writer.js';
import type { ReadableArtifact as ArtifactReader } from './repository-format.js';
import { makeRestoreWork, removeStaleRestoreWork } from './restore-work.js';

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
  /** Restore only the entries at or under these paths of tree sources (file artifacts: by name), as `ls` shows them. */
  paths?: readonly string[];
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
    await checkSourceTarget(path.join(target, source), options);
  }
  await checkFreeSpace(target, readers.reduce((sum, r) => sum + r.artifact.rawBytes, 0));
  // Folders this restore made: removed again if it fails, so a failed restore leaves no trace.
  const created = await ensureDir(target);
  await removeStaleRestoreWork(target, readers[0]?.logger);
  let work: string | undefined;
  try {
    work = await makeRestoreWork(target);
    const select = options.paths?.length ? new PathSelection(options.paths) : undefined;
    const staged: RestoredArtifact[] = [];
    for (const reader of readers) {
      const artifact = await stageArtifact(reader, work, { ...options, select });
      if (artifact) staged.push(artifact);
    }
    const unmatched = select?.unmatched() ?? [];
    if (unmatched.length) {
      throw new BackupError('E_NOT_FOUND', `nothing in the snapshot matches --path ${unmatched.map((p) => JSON.stringify(p)).join(', ')} (see sutazai-backup ls); nothing was restored`);
    }
    const moved: RestoredArtifact[] = [];
    for (const source of sources) {
      const from = path.join(work, source);
      const to = path.join(target, source);
      // With --path, a source none of whose entries were picked is left alone.
      if (select && (await isEmptyDir(from))) continue;
      await moveInto(from, to, options, select?.roots());
      for (const s of staged.filter((a) => a.source === source)) moved.push({ ...s, path: path.join(to, path.relative(from, s.path)) });
    }
    created.length = 0;
    return moved;
  } finally {
    if (work) await fsp.rm(work, { recursive: true, force: true });
    for (const d of created.reverse()) await fsp.rmdir(d).catch(() => {});
  }
}

/**
 * What may be at `DIR/<source>`: nothing, an empty folder, or (with --force) a folder whose
 * entries the restore replaces. Never a symbolic link: restoring through one would write, and
 * with --force delete, wherever it points.
 */
async function checkSourceTarget(sourceDir: string, options: RestoreToDirOptions): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(sourceDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (st.isSymbolicLink()) {
    const to = await fsp.readlink(sourceDir).catch(() => '?');
    throw new BackupError('E_RESTORE', `${sourceDir} is a symbolic link (to ${to}): a restore never writes through a link; remove the link, or restore into another folder; nothing was restored`);
  }
  if (!st.isDirectory()) {
    throw new BackupError('E_RESTORE', `${sourceDir} exists and is not a folder: remove it, or restore into another folder; nothing was restored`);
  }
  if (!options.force && !(await isEmptyDir(sourceDir))) {
    throw new BackupError('E_RESTORE', `${sourceDir} is not empty: restore into an empty folder, or pass --force to overwrite`);
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

async function stageArtifact(reader: ArtifactReader, work: string, options: RestoreToDirOptions & { select: PathSelection | undefined }): Promise<RestoredArtifact | undefined> {
  const { artifact } = reader;
  const sourceDir = path.join(work, artifact.source);
  await ensureDir(sourceDir);
  if (artifact.type === 'tree') {
    const recorded = artifact.meta.entries as Partial<TreeStats> | undefined;
    let stats: TreeStats;
    try {
      stats = await extractTree((write) => reader.readDecoded(write), sourceDir, {
        label: reader.label,
        ...(options.preserveOwner ? { preserveOwner: true } : {}),
        ...(typeof recorded?.bytes === 'number' ? { maxBytes: recorded.bytes } : {}),
        select: options.select,
        onWarning: (message) => reader.logger.warn(message),
      });
    } catch (err) {
      throw err instanceof BackupError && err.code === 'E_RESTORE' ? err : await reader.explain(err);
    }
    return { source: artifact.source, file: artifact.file, path: sourceDir, stats };
  }
  if (options.select && !options.select.selects(artifact.filename ?? artifact.file)) return undefined;
  const file = joinPlainName(sourceDir, artifact.filename ?? artifact.file, reader.label);
  const decoded = await reader.openDecoded();
  try {
    await pipeline(decoded, (await openPrivate(file, 'wx')).createWriteStream());
  } catch (err) {
    throw await reader.explain(err);
  }
  return { source: artifact.source, file: artifact.file, path: file };
}

/**
 * Moves a staged folder into place: a rename when the target is missing or empty, else (--force)
 * entry by entry, each replacing the entry of that name (a link there is removed, not followed).
 * With --path, the entries replaced are the picked paths (`roots`), not the top-level names, so
 * the rest of the target stays. The target is checked again first: it may have changed while the
 * artifacts were decoded.
 */
async function moveInto(from: string, to: string, options: RestoreToDirOptions, roots?: string[]): Promise<void> {
  await checkSourceTarget(to, options);
  if (!(await pathExists(to))) {
    await fsp.rename(from, to);
    return;
  }
  if (await isEmptyDir(to)) {
    await fsp.rmdir(to);
    await fsp.rename(from, to);
    return;
  }
  for (const root of roots ?? (await fsp.readdir(from))) {
    const parts = pathParts(root);
    if (parts.length === 0) return moveEntries(from, to);
    if (!(await pathExists(path.join(from, ...parts)))) continue;
    await moveNested(from, to, parts);
  }
}

async function moveEntries(from: string, to: string): Promise<void> {
  for (const name of await fsp.readdir(from)) {
    const dest = path.join(to, name);
    await fsp.rm(dest, { recursive: true, force: true });
    await fsp.rename(path.join(from, name), dest);
  }
}

/**
 * Moves `from/<parts>` to `to/<parts>`: the shallowest folder missing at the target moves whole
 * (with the archived modes of the folders above the picked path); the folders that exist must be
 * real folders, never links, or nothing would stop a write elsewhere.
 */
async function moveNested(from: string, to: string, parts: string[]): Promise<void> {
  for (let i = 1; i <= parts.length; i++) {
    const dest = path.join(to, ...parts.slice(0, i));
    const st = await fsp.lstat(dest).catch(() => undefined);
    if (i === parts.length || !st) {
      await fsp.rm(dest, { recursive: true, force: true });
      await fsp.rename(path.join(from, ...parts.slice(0, i)), dest);
      return;
    }
    if (!st.isDirectory()) {
      throw new BackupError('E_RESTORE', `${dest} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}: a restore never writes through it; remove it, or restore into another folder`);
    }
  }
}

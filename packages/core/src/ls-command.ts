import type { EngineContext } from './context.js';
import { BackupError } from './errors.js';
import { PathSelection } from './pipeline/path-selection.js';
import { pathParts } from './pipeline/tar-extract.js';
import { TarScanner, type TarEntryHeader } from './pipeline/tar-scan.js';
import type { ReadableArtifact } from './repository-format.js';
import { Scratch } from './scratch.js';
import { openSnapshot } from './snapshot-readers.js';

export interface LsOptions {
  snapshot: string;
  sources?: string[];
  /** Only the entries at or under this path (as restore writes it under `DIR/<source>/`). */
  path?: string;
  from?: string;
}

/** One entry of a snapshot: a tree artifact's tar entry, or a file artifact itself. */
export interface LsEntry {
  source: string;
  /** Where restore writes it, under `DIR/<source>/`. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  /** Permission bits (tree entries; null for a file artifact). */
  mode: number | null;
  size: number;
  mtime: string | null;
  linkTarget?: string;
}

export interface LsResult {
  snapshot: string;
  repository: string;
  entries: LsEntry[];
}

const TYPES: Record<string, LsEntry['type']> = { File: 'file', OldFile: 'file', ContiguousFile: 'file', Directory: 'directory', SymbolicLink: 'symlink', Link: 'hardlink' };

/**
 * `ls`: the entries inside a snapshot, read and decoded by the same verified readers as restore
 * (every byte checked against the manifest), never written to disk.
 */
export async function listEntries(ctx: EngineContext, options: LsOptions): Promise<LsResult> {
  const repo = ctx.repositories.at(options.from);
  const select = options.path !== undefined ? new PathSelection([options.path]) : undefined;
  const scratch = new Scratch(ctx.config.backupRoot);
  try {
    const { id, readers } = await openSnapshot(ctx, repo, options.snapshot, options.sources, scratch, 'restore');
    const entries: LsEntry[] = [];
    for (const reader of readers) {
      if (reader.artifact.type === 'tree') entries.push(...(await treeEntries(reader, select)));
      else if (!select || select.selects(fileName(reader))) entries.push(fileEntry(reader));
    }
    if (select?.unmatched().length) {
      throw new BackupError('E_NOT_FOUND', `nothing in snapshot ${id} matches ${JSON.stringify(options.path)}`);
    }
    return { snapshot: id, repository: repo.name, entries };
  } finally {
    await scratch.dispose();
  }
}

function fileName(reader: ReadableArtifact): string {
  return reader.artifact.filename ?? reader.artifact.file;
}

function fileEntry(reader: ReadableArtifact): LsEntry {
  return { source: reader.artifact.source, path: fileName(reader), type: 'file', mode: null, size: reader.artifact.rawBytes, mtime: null };
}

async function treeEntries(reader: ReadableArtifact, select: PathSelection | undefined): Promise<LsEntry[]> {
  const entries: LsEntry[] = [];
  const onEntry = (entry: TarEntryHeader) => {
    const key = pathParts(entry.path).join('/');
    if (!key || (select && !select.selects(key))) return;
    entries.push({
      source: reader.artifact.source,
      path: key,
      type: TYPES[entry.type] ?? 'other',
      mode: (entry.mode ?? 0) & 0o7777,
      size: entry.type === 'Directory' || entry.type === 'SymbolicLink' ? 0 : entry.size,
      mtime: entry.mtime ? entry.mtime.toISOString() : null,
      ...(entry.linkpath ? { linkTarget: entry.linkpath } : {}),
    });
  };
  const scanner = new TarScanner(reader.label, { onEntry });
  try {
    await reader.readDecoded((chunk) => scanner.update(chunk));
    scanner.end();
  } catch (err) {
    throw await reader.explain(err);
  }
  return entries;
}

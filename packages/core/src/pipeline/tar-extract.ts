import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, Unpack, type ReadEntry } from 'tar';
import { BackupError } from '../errors.js';

export interface ExtractOptions {
  /** Keep the archive's uid/gid (only meaningful as root). Default: files belong to whoever restores. */
  preserveOwner?: boolean;
  label: string;
}

export interface TreeStats {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
}

const allowedTypes = new Set(['File', 'OldFile', 'Directory', 'SymbolicLink']);

/** Why an entry must not be extracted, or undefined when it is safe. */
export function unsafeEntryReason(entry: Pick<ReadEntry, 'path' | 'type' | 'linkpath'>): string | undefined {
  const p = entry.path;
  if (!allowedTypes.has(entry.type)) return `entry type ${entry.type} is not allowed`;
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return 'absolute path';
  const parts = p.split('/');
  if (parts.includes('..')) return 'path contains ".."';
  if (entry.type === 'SymbolicLink') {
    const target = entry.linkpath ?? '';
    if (!target) return 'symlink without a target';
  }
  return undefined;
}

/**
 * Extracts a tar stream into `dir` (which must be a fresh, empty folder), refusing unsafe
 * entries: the first one aborts the extraction with an E_RESTORE error naming it. Modes are
 * restored exactly (no umask), ownership only with `preserveOwner`.
 */
export async function extractTree(input: Readable, dir: string, options: ExtractOptions): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  let refused: BackupError | undefined;
  const unpack = new Unpack({
    cwd: dir,
    strict: true,
    preserveOwner: options.preserveOwner ?? false,
    processUmask: 0,
    preservePaths: false,
    filter: (_p: string, entry: unknown) => {
      const e = entry as ReadEntry;
      const reason = unsafeEntryReason(e);
      if (reason) {
        refused ??= new BackupError('E_RESTORE', `${options.label}: refused archive entry ${JSON.stringify(e.path)}: ${reason}`);
        unpack.abort(refused);
        return false;
      }
      countEntry(stats, e);
      return true;
    },
  });
  try {
    await pipeline(input, unpack);
  } catch (err) {
    throw refused ?? wrapTarError(err, options.label);
  }
  if (refused) throw refused;
  return stats;
}

/** Reads a tar stream to the end, checking its structure, and counts what it holds. */
export async function scanTree(input: Readable, label: string): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      countEntry(stats, entry);
      entry.resume();
    },
  });
  try {
    await pipeline(input, parser);
  } catch (err) {
    throw wrapTarError(err, label);
  }
  return stats;
}

function countEntry(stats: TreeStats, entry: ReadEntry): void {
  if (entry.type === 'Directory') stats.directories++;
  else if (entry.type === 'SymbolicLink') stats.symlinks++;
  else {
    stats.files++;
    stats.bytes += entry.size ?? 0;
  }
}

function wrapTarError(err: unknown, label: string): BackupError {
  if (err instanceof BackupError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BackupError('E_INTEGRITY', `${label}: the archive cannot be read: ${message}`, { cause: err });
}

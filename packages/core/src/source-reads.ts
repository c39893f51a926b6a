import { realpathSync } from 'node:fs';
import path from 'node:path';
import type { ConfigIssue } from './errors.js';
import type { SourceRead } from './plugin.js';

/**
 * A backupRoot inside a folder a source archives (or a source reading from inside backupRoot)
 * makes every snapshot hold the ones before it: refused when the config loads, naming the
 * source's option and backupRoot. A path the source leaves out (`skips`) is fine.
 */
export function backupRootInSources(backupRoot: string, sources: readonly { key: string; reads?: SourceRead[] }[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const roots = variants(backupRoot);
  for (const source of sources) {
    for (const read of source.reads ?? []) {
      for (const p of read.paths) {
        const paths = variants(p);
        const at = `${source.key}.${read.key}`;
        if (roots.some((r) => paths.some((q) => isWithin(r, q))) && !skipped(read, p, backupRoot)) {
          issues.push({
            path: at,
            message:
              `backupRoot ${backupRoot} is inside ${p}: every snapshot would hold the snapshots and staging before it, ` +
              `growing run after run; move backupRoot out of ${p}${read.skips ? `, or exclude it (exclude: ["${backupRoot}"])` : ''}`,
          });
        } else if (paths.some((q) => roots.some((r) => isWithin(q, r)))) {
          issues.push({
            path: at,
            message: `${p} is inside backupRoot ${backupRoot}: a source must not back up the repository itself; back up another folder, or move backupRoot`,
          });
        }
      }
    }
  }
  return issues;
}

/** Whether the source leaves out backupRoot, or a folder between the read path and it. */
function skipped(read: SourceRead, readPath: string, backupRoot: string): boolean {
  if (!read.skips) return false;
  for (let at = backupRoot; isWithin(at, readPath) && at !== path.resolve(readPath); at = path.dirname(at)) {
    if (read.skips(at)) return true;
  }
  return false;
}

/** `child` is `parent` or below it. */
function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The path as written and, when it exists, with its links resolved. */
function variants(p: string): string[] {
  const resolved = path.resolve(p);
  let real: string | undefined;
  try {
    real = realpathSync.native(resolved);
  } catch {
    real = undefined;
  }
  return real && real !== resolved ? [resolved, real] : [resolved];
}

import { BackupError } from '../errors.js';
import { pathParts } from './tar-extract.js';

/**
 * The paths a user picked inside a tree source (`restore --path P`, `ls PATH`), as `ls` shows
 * them and restore writes them under `DIR/<source>/`: `srv/app/config.yml`. A leading `/` or
 * `./` and a trailing `/` are ignored. An entry is selected when it is a picked path or lies under
 * one; the folders above a picked path are kept too (`keeps`), so that it lands where it belongs.
 */
export class PathSelection {
  readonly paths: readonly string[];
  readonly #matched = new Set<string>();

  constructor(paths: readonly string[]) {
    this.paths = [...new Set(paths.map(normalizePickedPath))];
  }

  /** Whether the entry at archive path `entryPath` is a picked path or under one (and counts it as a match). */
  selects(entryPath: string): boolean {
    const key = pathParts(entryPath).join('/');
    const hit = this.paths.find((p) => p === '' || key === p || key.startsWith(`${p}/`));
    if (hit === undefined) return false;
    this.#matched.add(hit);
    return true;
  }

  /** Whether a folder entry is kept: selected, or above a picked path. */
  keeps(entryPath: string, type: string): boolean {
    if (this.selects(entryPath)) return true;
    const key = pathParts(entryPath).join('/');
    return type === 'Directory' && this.paths.some((p) => key === '' || p.startsWith(`${key}/`));
  }

  /** The picked paths no entry matched so far. */
  unmatched(): string[] {
    return this.paths.filter((p) => !this.#matched.has(p));
  }

  /** The shallowest picked paths (one under another is already part of it), for moving into place. */
  roots(): string[] {
    return this.paths.filter((p) => !this.paths.some((q) => q !== p && (q === '' || p.startsWith(`${q}/`))));
  }
}

/** `/srv/app/` → `srv/app`; refuses `..` (a picked path names something inside the tree). */
export function normalizePickedPath(p: string): string {
  const parts = pathParts(p);
  if (parts.includes('..')) throw new BackupError('E_USAGE', `path ${JSON.stringify(p)}: ".." is not allowed (name a path inside the snapshot, as ls shows it)`);
  return parts.join('/');
}

import { randomBytes } from 'node:crypto';
import { promises as fsp, type Dirent } from 'node:fs';
import path from 'node:path';
import { ownFolder } from './backup-root.js';
import { DIR_MODE, linkRefused, openPrivate, readOwnFile } from './fs.js';
import { currentOwner, isGone, isProcessOwner, type ProcessOwner } from './process-owner.js';
import { TOOL_NAME } from './version.js';

/** `run`: a run's `snapshots/<id>` or `work-<id>`; `scratch`: a verify's or restore's scratch folder. */
export type StagingKind = 'run' | 'scratch';

interface StagingMarker extends ProcessOwner {
  tool: string;
  kind: StagingKind;
  createdAt: string;
}

export interface StagingCleanup {
  /** Entries removed: left by runs or commands that are gone. */
  removed: string[];
  /** Entries the tool did not make (no marker): reported, never removed. */
  foreign: string[];
}

const MARKER = /^\.(.+)\.owner$/;

function markerName(name: string): string {
  return `.${name}.owner`;
}

/**
 * `<backupRoot>/staging/`: what a run writes before it commits (`snapshots/<id>`, `work-<id>`)
 * and the scratch folders of verify, restore and restore-test. Every entry the tool makes there
 * gets a marker beside it first (`.<name>.owner`: which process made it), so that cleaning up
 * removes only the tool's own entries, and only those whose process is gone; anything else in
 * staging/ is reported and left alone.
 */
export class StagingArea {
  readonly root: string;
  readonly dir: string;

  constructor(backupRoot: string) {
    this.root = backupRoot;
    this.dir = path.join(backupRoot, 'staging');
  }

  /** Makes the marked entry `rel` (`snapshots/<id>`, `work-<id>`), a fresh private folder. */
  async create(rel: string, kind: StagingKind): Promise<string> {
    const parent = await ownFolder(this.root, 'staging', path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel));
    const name = path.posix.basename(rel);
    const marker: StagingMarker = { tool: TOOL_NAME, kind, ...currentOwner(), createdAt: new Date().toISOString() };
    const handle = await openPrivate(path.join(parent, markerName(name)), 'wx');
    try {
      await handle.writeFile(JSON.stringify(marker) + '\n');
    } finally {
      await handle.close();
    }
    const entry = path.join(parent, name);
    await fsp.mkdir(entry, DIR_MODE);
    await fsp.chmod(entry, DIR_MODE);
    return entry;
  }

  /** A marked scratch folder, `scratch-<label>-<random>`. */
  scratch(label: string): Promise<string> {
    const clean = label.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40);
    return this.create(`scratch-${clean}-${randomBytes(4).toString('hex')}`, 'scratch');
  }

  /** Removes an entry this process made (the folder, never through a link, then its marker). */
  async discard(entry: string): Promise<void> {
    const st = await fsp.lstat(entry).catch(() => undefined);
    if (st?.isDirectory()) await fsp.rm(entry, { recursive: true, force: true });
    await this.forget(entry);
  }

  /** Drops the marker of an entry that was moved away (a committed snapshot). */
  async forget(entry: string): Promise<void> {
    await fsp.rm(path.join(path.dirname(entry), markerName(path.basename(entry))), { force: true });
  }

  /**
   * Removes what interrupted runs and commands left: marked entries whose process is gone, and
   * (with `locked`: the caller holds the run lock, so no run is active) every marked run entry.
   */
  async clean(options: { locked: boolean }): Promise<StagingCleanup> {
    const result: StagingCleanup = { removed: [], foreign: [] };
    const top = await this.entries(this.dir);
    if (!top) return result;
    await this.cleanFolder(this.dir, top, options, result, (name, e) => name === 'snapshots' && e.isDirectory());
    const snapshots = path.join(this.dir, 'snapshots');
    if (top.some((e) => e.name === 'snapshots' && e.isDirectory())) {
      await this.cleanFolder(snapshots, (await this.entries(snapshots)) ?? [], options, result, () => false);
    }
    return result;
  }

  private async cleanFolder(dir: string, entries: Dirent[], options: { locked: boolean }, result: StagingCleanup, expected: (name: string, e: Dirent) => boolean): Promise<void> {
    const names = new Set(entries.map((e) => e.name));
    for (const e of entries) {
      const marked = MARKER.exec(e.name);
      if (marked) {
        // A marker whose entry is gone (a crash between the two): dropped once its owner is.
        if (!names.has(marked[1]!) && this.removable(await this.marker(path.join(dir, e.name)), options)) await fsp.rm(path.join(dir, e.name), { force: true });
        continue;
      }
      if (expected(e.name, e)) continue;
      const abs = path.join(dir, e.name);
      const marker = names.has(markerName(e.name)) ? await this.marker(path.join(dir, markerName(e.name))) : undefined;
      if (!marker || !e.isDirectory()) {
        result.foreign.push(abs);
        continue;
      }
      if (!this.removable(marker, options)) continue;
      await fsp.rm(abs, { recursive: true, force: true });
      await fsp.rm(path.join(dir, markerName(e.name)), { force: true });
      result.removed.push(abs);
    }
  }

  private removable(marker: StagingMarker | undefined, options: { locked: boolean }): boolean {
    if (!marker) return false;
    return (options.locked && marker.kind === 'run') || isGone(marker);
  }

  private async entries(dir: string): Promise<Dirent[] | undefined> {
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (!st) return undefined;
    if (st.isSymbolicLink()) throw linkRefused(dir);
    if (!st.isDirectory()) return undefined;
    return fsp.readdir(dir, { withFileTypes: true });
  }

  /** A marker the tool wrote (a regular file of this user, in the marker's format), or undefined. */
  private async marker(file: string): Promise<StagingMarker | undefined> {
    try {
      const st = await fsp.lstat(file);
      if (!st.isFile() || (process.getuid && st.uid !== process.getuid())) return undefined;
      const value = JSON.parse(await readOwnFile(file)) as StagingMarker;
      return isProcessOwner(value) && value.tool === TOOL_NAME && (value.kind === 'run' || value.kind === 'scratch') ? value : undefined;
    } catch {
      return undefined;
    }
  }
}

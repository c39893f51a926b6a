import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { DIR_MODE, openPrivate, readOwnFile } from './fs.js';
import type { Logger } from './log.js';
import { currentOwner, isGone, isProcessOwner, type ProcessOwner } from './process-owner.js';
import { TOOL_NAME } from './version.js';

/**
 * The private folder a restore extracts into, inside its target (`DIR/.sutazai-restore-XXXXXX`),
 * so that moving the result into place is a rename. It holds a marker, `.owner` (which process
 * made it; a source name never starts with a dot), so that a later restore can remove what a
 * killed one left, and nothing else: not a folder another restore is using right now, not a
 * folder of that name the tool did not make.
 */
const PREFIX = '.sutazai-restore-';
const WORK_NAME = /^\.sutazai-restore-[A-Za-z0-9]{6}$/;
const MARKER = '.owner';
/** A work folder without its marker is one being made right now, unless it is older than this. */
const UNMARKED_GRACE_MS = 60_000;

interface WorkMarker extends ProcessOwner {
  tool: string;
  createdAt: string;
}

export async function makeRestoreWork(target: string): Promise<string> {
  const work = await fsp.mkdtemp(path.join(target, PREFIX));
  await fsp.chmod(work, DIR_MODE);
  const marker: WorkMarker = { tool: TOOL_NAME, ...currentOwner(), createdAt: new Date().toISOString() };
  // Written whole under another name first: a marker that exists is complete.
  const partial = path.join(work, `${MARKER}.partial`);
  const handle = await openPrivate(partial, 'wx');
  try {
    await handle.writeFile(JSON.stringify(marker) + '\n');
  } finally {
    await handle.close();
  }
  await fsp.rename(partial, path.join(work, MARKER));
  return work;
}

/** Removes the work folders that killed restores left in `target`; resolves with their paths. */
export async function removeStaleRestoreWork(target: string, logger: Logger | undefined): Promise<string[]> {
  let names: string[];
  try {
    names = (await fsp.readdir(target)).filter((n) => WORK_NAME.test(n));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const work = path.join(target, name);
    const st = await fsp.lstat(work).catch(() => undefined);
    // Never through a link, never a folder of another user.
    if (!st?.isDirectory() || (process.getuid && st.uid !== process.getuid())) continue;
    const marker = await readMarker(path.join(work, MARKER));
    if (marker) {
      if (!isGone(marker)) continue;
      await fsp.rm(work, { recursive: true, force: true });
      removed.push(work);
    } else if (Date.now() - st.mtimeMs > UNMARKED_GRACE_MS) {
      // Killed between making the folder and marking it: empty but for a marker cut short. Anything else is not ours.
      const inside = await fsp.readdir(work).catch(() => ['?']);
      if (inside.every((n) => n.startsWith(MARKER))) {
        await fsp.rm(work, { recursive: true, force: true });
        removed.push(work);
      } else logger?.warn(`${work} was not made by this version of the tool (no marker): left alone; remove it by hand if nothing uses it`);
    }
  }
  for (const w of removed) logger?.info(`removed ${w}, left by an interrupted restore`);
  return removed;
}

async function readMarker(file: string): Promise<WorkMarker | undefined> {
  try {
    const value = JSON.parse(await readOwnFile(file)) as WorkMarker;
    return isProcessOwner(value) && value.tool === TOOL_NAME ? value : undefined;
  } catch {
    return undefined;
  }
}

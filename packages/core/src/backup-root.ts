import { promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { BackupError } from './errors.js';
import { ensureDir, ensureInside, linkRefused } from './fs.js';

/** The folders the tool keeps in backupRoot, and the files it keeps in state/. */
const OWN_FOLDERS = ['state', 'staging', 'snapshots'] as const;
const STATE_FILES = ['lock', 'history.jsonl', 'notifications.json', 'schedule.json', 'daemon.lock'] as const;

/**
 * Refuses a backupRoot that someone else could tamper with before a run: whoever can write to it
 * (or to a folder above it) can plant links there that make a root run write or delete elsewhere.
 * backupRoot, and its state/, staging/ and snapshots/, must belong to this user and be writable
 * by nobody else; every folder above must belong to root or this user and be writable by nobody
 * else unless it is sticky (/tmp). A symbolic link at one of the tool's own names is refused.
 * Creates backupRoot (0700) when it is missing. Errors are E_CONFIG (exit 2): the fix is the
 * user's, and nothing was written.
 */
export async function checkBackupRoot(root: string): Promise<void> {
  await checkAncestors(path.resolve(root));
  await ensureDir(root);
  const real = await fsp.realpath(root);
  if (real !== path.resolve(root)) await checkAncestors(real);
  checkOwned(`backupRoot ${root}`, root, await fsp.stat(root));
  for (const name of OWN_FOLDERS) {
    const st = await lstatOrUndefined(path.join(root, name));
    if (!st) continue;
    const where = path.join(root, name);
    if (st.isSymbolicLink()) throw linkRefused(where);
    if (!st.isDirectory()) throw unsafe(`${where} is not a folder`, `remove it; the tool keeps its ${name} there`);
    checkOwned(where, where, st);
  }
  for (const name of STATE_FILES) {
    const file = path.join(root, 'state', name);
    const st = await lstatOrUndefined(file);
    if (!st) continue;
    if (st.isSymbolicLink()) throw linkRefused(file);
    if (!st.isFile()) throw unsafe(`${file} is not a regular file`, 'remove it');
    checkOwned(file, file, st);
  }
}

/**
 * One of the tool's own folders in backupRoot (`state`, `staging/snapshots`), checked with
 * `checkBackupRoot` and created when missing: never a link.
 */
export async function ownFolder(root: string, ...parts: string[]): Promise<string> {
  await checkBackupRoot(root);
  return ensureInside(root, ...parts);
}

function checkOwned(what: string, p: string, st: Stats): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  if (st.uid !== uid) {
    throw unsafe(`${what} belongs to uid ${st.uid}, not to this user (uid ${uid}): its owner could plant links that make a run write or delete elsewhere`, `chown -R ${uid} ${p}, or choose a backupRoot of your own`);
  }
  if (st.mode & 0o022) {
    throw unsafe(`${what} is writable by ${whoElse(st.mode)} (mode ${modeOf(st)}): they could plant links that make a run write or delete elsewhere`, `chmod go-w ${p}`);
  }
}

async function checkAncestors(p: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  const parts = p.split(path.sep).filter(Boolean);
  let current: string = path.sep;
  for (const part of parts.slice(0, -1)) {
    current = path.join(current, part);
    const st = await lstatOrUndefined(current);
    if (!st) return;
    const fix = `move backupRoot to a folder that only root or this user can change`;
    if (st.uid !== 0 && st.uid !== uid) {
      throw unsafe(`backupRoot ${p} lies in ${current}, which belongs to uid ${st.uid}: its owner could replace backupRoot`, fix);
    }
    // A sticky folder (/tmp) lets others add entries but not rename or remove ours.
    if (st.isDirectory() && st.mode & 0o022 && !(st.mode & 0o1000)) {
      throw unsafe(`backupRoot ${p} lies in ${current}, which ${whoElse(st.mode)} can write to (mode ${modeOf(st)}): they could replace backupRoot`, `chmod go-w ${current}, or ${fix}`);
    }
  }
}

function unsafe(problem: string, fix: string): BackupError {
  return new BackupError('E_CONFIG', `backupRoot: ${problem}; ${fix}`);
}

function whoElse(mode: number): string {
  return mode & 0o002 ? (mode & 0o020 ? 'its group and others' : 'others') : 'its group';
}

function modeOf(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

import { readFileSync } from 'node:fs';
import os from 'node:os';

/**
 * Which process made something (a lock, a staging folder, a restore's work folder): enough to
 * tell later whether that process is gone, so that only what a dead process left is cleaned up.
 */
export interface ProcessOwner {
  pid: number;
  host: string;
  /** The process's start time in clock ticks (Linux), so a reused pid is not mistaken for it. */
  processStart?: string;
}

export function currentOwner(): ProcessOwner {
  const start = processStart(process.pid);
  return { pid: process.pid, host: os.hostname(), ...(start ? { processStart: start } : {}) };
}

/**
 * Whether the owner has certainly exited: on this host, its pid is dead or now belongs to a
 * process that started at another time. Another host's processes cannot be seen: never gone.
 */
export function isGone(owner: ProcessOwner): boolean {
  if (owner.host !== os.hostname()) return false;
  if (!isAlive(owner.pid)) return true;
  const start = processStart(owner.pid);
  return Boolean(owner.processStart && start && owner.processStart !== start);
}

/** Whether a value read back from disk has the shape of a ProcessOwner. */
export function isProcessOwner(value: unknown): value is ProcessOwner {
  const v = value as Partial<ProcessOwner> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    Number.isSafeInteger(v.pid) &&
    (v.pid as number) > 0 &&
    typeof v.host === 'string' &&
    (v.processStart === undefined || typeof v.processStart === 'string')
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

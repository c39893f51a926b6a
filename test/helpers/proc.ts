/**
 * What /proc shows of a process's descendants: their command lines and environments, which any
 * process of the same user (and root) can read while they run.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessSeen {
  pid: number;
  /** Arguments joined by spaces. */
  cmdline: string;
  /** NAME=value entries. */
  environ: string[];
}

const cmdlineOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');

/**
 * The descendants of `pid` running now. A child caught between fork and exec still is `pid`'s
 * copy (its command line, its environment): it is left out, being the parent, not a program it runs.
 */
export function descendants(pid: number): ProcessSeen[] {
  let own: string | undefined;
  try {
    own = cmdlineOf(pid);
  } catch {
    return [];
  }
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone already
    }
  }
  const out: ProcessSeen[] = [];
  for (const [child] of parents) {
    let p = parents.get(child);
    while (p !== undefined && p !== pid && p > 1) p = parents.get(p);
    if (p !== pid) continue;
    try {
      const cmdline = cmdlineOf(child);
      const environ = readFileSync(`/proc/${child}/environ`, 'utf8').split('\0').filter(Boolean);
      if (cmdline && cmdline !== own) out.push({ pid: child, cmdline, environ });
    } catch {
      // gone already
    }
  }
  return out;
}

/** Polls the descendants of `pid` every few milliseconds until stopped; keeps each program each process was seen running. */
export function watchDescendants(pid: number): { stop(): void; seen: Map<string, ProcessSeen> } {
  const seen = new Map<string, ProcessSeen>();
  const timer = setInterval(() => {
    for (const p of descendants(pid)) seen.set(`${p.pid} ${p.cmdline}`, p);
  }, 3);
  return { stop: () => clearInterval(timer), seen };
}

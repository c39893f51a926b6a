// Runs a command and reports its wall time and the peak RSS of its whole process tree: the peak,
// over samples of /proc every SAMPLE_MS, of the sum of the resident sets of the command and all
// its descendants. A pipeline (`sh -c 'tar | zstd'`) or a tool with helper processes counts as
// the memory it holds at once, not as its largest single process. A peak shorter than the
// sampling interval can be missed: the figure is a lower bound, within one sample.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO_ROOT, 'packages/cli/dist/bin.js');

const SAMPLE_MS = 20;
const PAGE_KB = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) / 1024;

/** The children of `pid` (of every thread of it), from /proc; none once it has exited. */
function childrenOf(pid) {
  let tasks;
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out = [];
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
    } catch {
      // the thread or the process ended while we looked
    }
  }
  return out;
}

function rssKb(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE_KB;
  } catch {
    return 0;
  }
}

/** Resident memory of `root` and all its descendants now: { totalKb, largestKb, processes }. */
export function treeRss(root) {
  const seen = new Set();
  const queue = [root];
  let totalKb = 0;
  let largestKb = 0;
  while (queue.length) {
    const pid = queue.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    const kb = rssKb(pid);
    totalKb += kb;
    largestKb = Math.max(largestKb, kb);
    queue.push(...childrenOf(pid));
  }
  return { totalKb, largestKb, processes: seen.size };
}

/**
 * Runs `command args` (use `sh -c` for pipelines); resolves with { code, wallMs, maxRssKb,
 * largestProcessKb, maxProcesses, stderr }: maxRssKb is the tree's peak (the sum), largestProcessKb
 * the largest single process seen.
 */
export function measure(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', options.stdout ?? 'ignore', 'pipe'],
    });
    let stderr = '';
    let maxRssKb = 0;
    let largestProcessKb = 0;
    let maxProcesses = 0;
    const sample = () => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      const now = treeRss(child.pid);
      maxRssKb = Math.max(maxRssKb, now.totalKb);
      largestProcessKb = Math.max(largestProcessKb, now.largestKb);
      maxProcesses = Math.max(maxProcesses, now.processes);
    };
    const timer = setInterval(sample, SAMPLE_MS);
    child.stderr.on('data', (d) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearInterval(timer);
      reject(new Error(`measure: cannot run ${command}: ${err.message}`));
    });
    child.on('exit', () => clearInterval(timer));
    child.on('close', (code, signal) => {
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      resolve({ code: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15), wallMs, maxRssKb, largestProcessKb, maxProcesses, stderr });
    });
    sample();
  });
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const mib = (kb) => `${(kb / 1024).toFixed(0)} MiB`;

/** Drops the page cache when we may (root), so runs start from the same state; else a no-op. */
export async function dropCaches() {
  await new Promise((resolve) => {
    const child = spawn('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
    child.on('close', resolve);
    child.on('error', resolve);
  });
}

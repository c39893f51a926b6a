// Runs a command and reports its wall time and peak RSS (the largest resident set of any process
// it started, from getrusage(RUSAGE_CHILDREN) in a tiny python3 wrapper, so pipelines count too).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO_ROOT, 'packages/cli/dist/bin.js');

const WRAPPER = `
import resource, subprocess, sys, time, json
t0 = time.monotonic()
code = subprocess.call(sys.argv[1:])
wall = time.monotonic() - t0
print(json.dumps({"code": code, "wallMs": wall * 1000, "maxRssKb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}), file=sys.stderr)
`;

/** Runs `command args` (use `sh -c` for pipelines); resolves with { code, wallMs, maxRssKb, stderr }. */
export function measure(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', WRAPPER, command, ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', options.stdout ?? 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const lines = stderr.trim().split('\n');
      try {
        const result = JSON.parse(lines.at(-1));
        resolve({ ...result, stderr: lines.slice(0, -1).join('\n') });
      } catch {
        reject(new Error(`measure: no result from ${command}: ${stderr}`));
      }
    });
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

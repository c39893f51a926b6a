#!/usr/bin/env node
// The restic format's content layer (chunker, archiver, restorer, over the storage half's local
// repository) beside stock restic, on the mixed dataset of bench/lib/dataset.mjs:
//   first backup, a second backup after a small change (one log +1 MiB, one new file) with the
//   first as parent, and a restore; wall time, MiB/s, peak RSS, and bytes the repository grew.
// Usage: node bench/restic-archive.mjs [sizeMB=500] [--work DIR]   (build packages/core first)
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDataset } from './lib/dataset.mjs';
import { dropCaches, measure, mib, REPO_ROOT } from './lib/measure.mjs';

const args = process.argv.slice(2);
const workAt = args.indexOf('--work');
const work = path.resolve(workAt >= 0 ? args.splice(workAt, 2)[1] : path.join(os.tmpdir(), 'sutazai-bench-restic'));
const sizeMB = Number(args[0] ?? 500);
const env = { RESTIC_PASSWORD: 'bench-password', RESTIC_CACHE_DIR: path.join(work, 'restic-cache') };
const run = path.join(REPO_ROOT, 'bench/lib/restic-run.mjs');

async function du(dir) {
  return Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
}

async function timed(label, command, argv, bytes) {
  await dropCaches();
  const r = await measure(command, argv, { env });
  if (r.code !== 0) throw new Error(`${label} failed: ${r.stderr}`);
  const mibs = bytes / 1024 / 1024 / (r.wallMs / 1000);
  console.log(`${label.padEnd(28)} ${(r.wallMs / 1000).toFixed(2).padStart(7)} s ${mibs.toFixed(0).padStart(6)} MiB/s  peak RSS ${mib(r.maxRssKb)}`);
  return r;
}

const data = await ensureDataset(path.join(work, 'dataset'), sizeMB);
console.log(`dataset: ${data.files} files, ${(data.bytes / 1e6).toFixed(0)} MB, in ${data.dir}`);
const ours = path.join(work, 'repo-ours');
const theirs = path.join(work, 'repo-restic');
await fsp.rm(ours, { recursive: true, force: true });
await fsp.rm(theirs, { recursive: true, force: true });
execFileSync('restic', ['init', '-r', theirs, '--repository-version', '2'], { env: { ...process.env, ...env }, stdio: 'ignore' });

const first = {
  ours: await timed('first backup (ours)', 'node', [run, 'backup', ours, data.dir], data.bytes),
  restic: await timed('first backup (restic)', 'restic', ['-r', theirs, 'backup', data.dir], data.bytes),
};
const sizes1 = { ours: await du(ours), restic: await du(theirs) };

// A small change: one log grows by 1 MiB, one new config file.
const logs = path.join(data.dir, 'logs', 'api');
const log = path.join(logs, (await fsp.readdir(logs)).sort()[0]);
const before = (await fsp.stat(log)).size;
await fsp.appendFile(log, Buffer.from(randomBytes(512 * 1024).toString('hex')));
await fsp.writeFile(path.join(data.dir, 'config', 'new.yaml'), 'added: true\n');
try {
  const second = {
    ours: await timed('second backup (ours)', 'node', [run, 'backup', ours, data.dir, '--parent'], data.bytes),
    restic: await timed('second backup (restic)', 'restic', ['-r', theirs, 'backup', data.dir], data.bytes),
  };
  const added = { ours: (await du(ours)) - sizes1.ours, restic: (await du(theirs)) - sizes1.restic };
  const target = path.join(work, 'restore');
  await fsp.rm(target, { recursive: true, force: true });
  const restore = {
    ours: await timed('restore (ours)', 'node', [run, 'restore', ours, `${target}-ours`], data.bytes),
    restic: await timed('restore (restic)', 'restic', ['-r', theirs, 'restore', 'latest', '--target', `${target}-restic`], data.bytes),
  };
  await fsp.rm(`${target}-ours`, { recursive: true, force: true });
  await fsp.rm(`${target}-restic`, { recursive: true, force: true });
  const ratio = (a, b) => (a / b).toFixed(2);
  console.log(`repository after the first backup: ours ${(sizes1.ours / 1e6).toFixed(1)} MB, restic ${(sizes1.restic / 1e6).toFixed(1)} MB`);
  console.log(`second backup added: ours ${(added.ours / 1e6).toFixed(2)} MB, restic ${(added.restic / 1e6).toFixed(2)} MB (${ratio(added.ours, added.restic)}×)`);
  console.log(
    `time ours/restic: first ${ratio(first.ours.wallMs, first.restic.wallMs)}, second ${ratio(second.ours.wallMs, second.restic.wallMs)}, restore ${ratio(restore.ours.wallMs, restore.restic.wallMs)}`,
  );
} finally {
  await fsp.truncate(log, before);
  await fsp.rm(path.join(data.dir, 'config', 'new.yaml'), { force: true });
}

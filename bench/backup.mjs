#!/usr/bin/env node
// Backup and restore speed beside the tools users would otherwise run, in the same run and
// interleaved (the order rotates each repetition, so every tool sees the same machine):
//   backup:  `sutazai-backup run` (files source, backupRoot only, its own verification included)
//            vs `tar -cf - | zstd -3 -T0` vs restic's first backup (a fresh repository each time)
//   restore: `sutazai-backup restore latest --to DIR` vs `zstd -d | tar -x` of the same artifact
//            vs `restic restore`
// One warm-up round of every tool (its restores checked file by file) comes before the measured
// repetitions. Prints medians, ratios, output sizes and peak RSS (of each command's whole process
// tree), and checks the targets of issue 7. A competitor that is not installed is a FAIL and
// exit code 1, before anything runs.
// Usage: node bench/backup.mjs [sizeMB=750] [--reps N=5] [--work DIR] [--keep]
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireCompetitors } from './lib/competitors.mjs';
import { ensureDataset } from './lib/dataset.mjs';
import { CLI, dropCaches, measure, median, mib } from './lib/measure.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
};
const keep = args.includes('--keep') ? (args.splice(args.indexOf('--keep'), 1), true) : false;
const reps = Number(flag('--reps', 5));
const work = path.resolve(flag('--work', path.join(os.tmpdir(), 'sutazai-bench')));
const sizeMB = Number(args[0] ?? 750);

const { restic } = requireCompetitors([
  { name: 'tar', command: 'tar', install: 'apt-get install tar' },
  { name: 'zstd', command: 'zstd', install: 'apt-get install zstd' },
  { name: 'restic', command: 'restic', install: 'apt-get install restic' },
]);

function duBytes(p) {
  return Number(execFileSync('du', ['-sb', p], { encoding: 'utf8' }).split('\t')[0]);
}

const datasetDir = path.join(work, 'dataset');
const t0 = Date.now();
const dataset = await ensureDataset(datasetDir, sizeMB);
const dataRoot = dataset.dir;
const out = path.join(work, 'out');
const restoreRoot = path.join(work, 'restored');
const resticEnv = { RESTIC_PASSWORD: 'bench-password', RESTIC_CACHE_DIR: path.join(out, 'restic-cache') };
const loadBefore = os.loadavg();

console.log(
  `dataset: ${(dataset.bytes / 1e6).toFixed(0)} MB in ${dataset.files} files under ${dataRoot} (${((Date.now() - t0) / 1000).toFixed(0)} s to prepare)`,
);
console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}`);
console.log(`load average at start: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}; ${reps} repetitions`);

const rcFile = path.join(out, 'sutazai', '.sutazai-backuprc');
async function freshSutazai() {
  await fsp.mkdir(path.dirname(rcFile), { recursive: true });
  await fsp.writeFile(rcFile, `backupRoot: ./repo\nsources:\n  data: { use: files, paths: [${JSON.stringify(dataRoot)}] }\n`);
}
const cliEnv = { SUTAZAI_BACKUP_LOG_LEVEL: 'warn' };

// Each tool: backup() leaves its output in place for restore(); sizes are read in between.
const tools = [
  {
    name: 'sutazai-backup',
    async backup() {
      await freshSutazai();
      return measure(process.execPath, [CLI, 'run'], { cwd: path.dirname(rcFile), env: cliEnv });
    },
    outputBytes: () => duBytes(path.join(out, 'sutazai', 'repo', 'snapshots')),
    restore: (dir) => measure(process.execPath, [CLI, 'restore', 'latest', '--to', dir], { cwd: path.dirname(rcFile), env: cliEnv }),
    restoredData: (dir) => path.join(dir, 'data', dataRoot.slice(1)),
  },
  {
    name: 'tar | zstd -3 -T0',
    backup: () => measure('sh', ['-c', `tar -cf - -C "${path.dirname(dataRoot)}" data | zstd -3 -T0 -q -o "${out}/baseline.tar.zst"`]),
    outputBytes: () => duBytes(path.join(out, 'baseline.tar.zst')),
    // Decodes sutazai-backup's own artifact: the same archive the tool restores from.
    restore: async (dir) => {
      const artifact = await sutazaiArtifact();
      return measure('sh', ['-c', `zstd -d -q -c "${artifact}" | tar -xf - -C "${dir}"`]);
    },
    restoredData: (dir) => path.join(dir, dataRoot.slice(1)),
    restoreName: 'zstd -d | tar -x',
  },
  {
    name: 'restic backup',
    async backup() {
      const repo = path.join(out, 'restic-repo');
      execFileSync(restic, ['-r', repo, 'init', '-q'], { env: { ...process.env, ...resticEnv }, stdio: 'ignore' });
      return measure(restic, ['-r', repo, 'backup', '-q', dataRoot], { env: resticEnv });
    },
    outputBytes: () => duBytes(path.join(out, 'restic-repo')),
    restore: (dir) => measure(restic, ['-r', path.join(out, 'restic-repo'), 'restore', 'latest', '--target', dir, '-q'], { env: resticEnv }),
    restoredData: (dir) => path.join(dir, dataRoot.slice(1)),
    restoreName: 'restic restore',
  },
];

async function sutazaiArtifact() {
  const snapshots = path.join(out, 'sutazai', 'repo', 'snapshots');
  const [id] = await fsp.readdir(snapshots);
  return path.join(snapshots, id, 'data.tar.zst');
}

const results = new Map(tools.map((t) => [t.name, { backup: [], restore: [], bytes: 0 }]));

function check(label, result) {
  if (result.code !== 0) throw new Error(`${label} exited ${result.code}: ${result.stderr}`);
  return result;
}

/**
 * Deleting a large tree leaves the file system busy for a while (journal, discards): wait for it
 * before the next timed run, so no tool pays for the previous one's clean-up.
 */
async function settle() {
  execFileSync('sync');
  await new Promise((r) => setTimeout(r, 1000));
  await dropCaches();
}

// Every file's size and content matches: a restore that is fast but wrong must not count.
function sameTree(a, b) {
  execFileSync('diff', ['-r', '--no-dereference', a, b], { stdio: 'inherit' });
}

/** One round of every tool, backups then restores, in an order that rotates with `rep`. */
async function round(rep, record) {
  await fsp.rm(out, { recursive: true, force: true });
  await fsp.mkdir(out, { recursive: true });
  const order = tools.map((_, i) => tools[(i + rep) % tools.length]);
  // Warm the page cache the same way for everyone when caches cannot be dropped.
  execFileSync('sh', ['-c', `tar -cf - -C "${path.dirname(dataRoot)}" data > /dev/null`]);
  for (const tool of order) {
    await settle();
    const r = check(`${tool.name} (backup)`, await tool.backup());
    if (record) results.get(tool.name).backup.push(r);
    results.get(tool.name).bytes = tool.outputBytes();
  }
  for (const tool of order) {
    const dir = path.join(restoreRoot, tool.name.replace(/[^a-z]+/g, '-'));
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.mkdir(dir, { recursive: true });
    await settle();
    const r = check(`${tool.restoreName ?? tool.name} (restore)`, await tool.restore(dir));
    if (record) results.get(tool.name).restore.push(r);
    else sameTree(dataRoot, tool.restoredData(dir));
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

// The warm-up: first runs pay for loading programs and libraries from disk; not counted.
await round(0, false);
process.stdout.write(`warm-up round done (load ${os.loadavg()[0].toFixed(2)})\n`);
for (let rep = 0; rep < reps; rep++) {
  await round(rep, true);
  process.stdout.write(`repetition ${rep + 1}/${reps} done (load ${os.loadavg()[0].toFixed(2)})\n`);
}
const loadAfter = os.loadavg();

const summary = (runs) => ({ wallMs: median(runs.map((r) => r.wallMs)), maxRssKb: Math.max(...runs.map((r) => r.maxRssKb)) });
const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;
const ours = results.get('sutazai-backup');
const oursBackup = summary(ours.backup);
const oursRestore = summary(ours.restore);

console.log('\nbackup (median wall, ratio = sutazai-backup / tool, output size, peak RSS of the process tree: the sum over its processes)');
console.log('| tool | wall | sutazai-backup / tool | output | peak RSS |');
console.log('|---|---|---|---|---|');
for (const tool of tools) {
  const r = results.get(tool.name);
  const s = summary(r.backup);
  console.log(`| ${tool.name.replaceAll("|", "\\|")} | ${seconds(s.wallMs)} | ${(oursBackup.wallMs / s.wallMs).toFixed(2)}x | ${(r.bytes / 1e6).toFixed(1)} MB | ${mib(s.maxRssKb)} |`);
}
console.log('\nrestore');
console.log('| tool | wall | sutazai-backup / tool | peak RSS |');
console.log('|---|---|---|---|');
for (const tool of tools) {
  const s = summary(results.get(tool.name).restore);
  console.log(`| ${(tool.restoreName ?? "sutazai-backup restore").replaceAll("|", "\\|")} | ${seconds(s.wallMs)} | ${(oursRestore.wallMs / s.wallMs).toFixed(2)}x | ${mib(s.maxRssKb)} |`);
}
console.log(`\nall runs (s): ${tools.map((t) => `${t.name}: backup ${results.get(t.name).backup.map((r) => (r.wallMs / 1000).toFixed(2)).join('/')}, restore ${results.get(t.name).restore.map((r) => (r.wallMs / 1000).toFixed(2)).join('/')}`).join('; ')}`);
console.log(`load average at end: ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);

// The targets of issue 7.
const tarZstd = results.get('tar | zstd -3 -T0');
const targets = [
  ['backup <= 1.5x tar | zstd', oursBackup.wallMs <= 1.5 * summary(tarZstd.backup).wallMs],
  ['output <= tar | zstd output', ours.bytes <= tarZstd.bytes],
  ['restore <= 1.5x zstd -d | tar -x', oursRestore.wallMs <= 1.5 * summary(tarZstd.restore).wallMs],
  ['peak RSS < 200 MiB (backup and restore)', Math.max(oursBackup.maxRssKb, oursRestore.maxRssKb) < 200 * 1024],
];
const resticResults = results.get('restic backup');
targets.push(['backup <= 0.6x restic backup', oursBackup.wallMs <= 0.6 * summary(resticResults.backup).wallMs]);
targets.push(['restore <= restic restore', oursRestore.wallMs <= summary(resticResults.restore).wallMs]);
console.log('');
for (const [name, ok] of targets) console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}`);
process.exitCode = targets.every(([, ok]) => ok) ? 0 : 1;

if (!keep) await fsp.rm(out, { recursive: true, force: true });
await fsp.rm(restoreRoot, { recursive: true, force: true });

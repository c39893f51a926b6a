#!/usr/bin/env node
// Memory stays flat: peak RSS of `sutazai-backup run` (its own verification included) and of
// `restore latest --to DIR`, beside `tar -cf - | zstd -3 -T0` of the same data, in the same run.
//   node bench/memory.mjs [sizeGB=2] [--single] [--work DIR]
// The default dataset is the mixed one of bench/backup.mjs (logs, model blobs, configs) of
// sizeGB decimal gigabytes; --single is one incompressible file of sizeGB GiB.
// Peak RSS is of each command's whole process tree: the sum over its processes, sampled. One
// measurement of each, no warm-up: the page cache, which a warm-up fills, is not part of RSS.
// Without tar or zstd (the baseline): a FAIL line and exit code 1.
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { requireCompetitors } from './lib/competitors.mjs';
import { ensureDataset } from './lib/dataset.mjs';
import { CLI, measure, mib } from './lib/measure.mjs';

requireCompetitors([
  { name: 'tar', command: 'tar', install: 'apt-get install tar' },
  { name: 'zstd', command: 'zstd', install: 'apt-get install zstd' },
]);

const args = process.argv.slice(2);
const single = args.includes('--single');
const workIndex = args.indexOf('--work');
const work = path.resolve(workIndex >= 0 ? args[workIndex + 1] : path.join(os.tmpdir(), 'sutazai-bench-memory'));
const sizeGB = Number(args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--work') ?? 2);
const LIMIT_MIB = 200;

let dataRoot;
let description;
if (single) {
  await fsp.rm(work, { recursive: true, force: true });
  dataRoot = path.join(work, 'data');
  await fsp.mkdir(dataRoot, { recursive: true });
  // 64 MiB of random bytes repeated: larger than zstd's window, so it does not compress.
  const block = randomBytes(64 * 1024 * 1024);
  const handle = await fsp.open(path.join(dataRoot, 'model.bin'), 'w');
  for (let written = 0; written < sizeGB * 1024 ** 3; written += block.length) await handle.write(block);
  await handle.close();
  description = `${sizeGB} GiB in one incompressible file`;
} else {
  const dataset = await ensureDataset(path.join(work, 'dataset'), sizeGB * 1000);
  dataRoot = dataset.dir;
  description = `${(dataset.bytes / 1e9).toFixed(2)} GB mixed, ${dataset.files} files`;
}
const runDir = path.join(work, 'run');
await fsp.rm(runDir, { recursive: true, force: true });
await fsp.mkdir(runDir, { recursive: true });
await fsp.writeFile(path.join(runDir, '.sutazai-backuprc'), `backupRoot: ./repo\nsources:\n  data: { use: files, paths: [${JSON.stringify(dataRoot)}] }\n`);

console.log(`dataset: ${description} (${dataRoot}); ${os.cpus().length} cores, node ${process.version}, load ${os.loadavg()[0].toFixed(2)}`);
const env = { SUTAZAI_BACKUP_LOG_LEVEL: 'warn' };
const backup = await measure(process.execPath, [CLI, 'run'], { cwd: runDir, env });
if (backup.code !== 0) throw new Error(`sutazai-backup run failed: ${backup.stderr}`);
const restored = path.join(runDir, 'restored');
const restore = await measure(process.execPath, [CLI, 'restore', 'latest', '--to', restored], { cwd: runDir, env });
if (restore.code !== 0) throw new Error(`sutazai-backup restore failed: ${restore.stderr}`);
await fsp.rm(restored, { recursive: true, force: true });
const baseline = await measure('sh', ['-c', `tar -cf - -C "${path.dirname(dataRoot)}" "${path.basename(dataRoot)}" | zstd -3 -T0 -q -o "${runDir}/baseline.tar.zst"`]);
if (baseline.code !== 0) throw new Error(`tar | zstd failed: ${baseline.stderr}`);

console.log(`sutazai-backup run:     ${(backup.wallMs / 1000).toFixed(1)} s, peak RSS ${mib(backup.maxRssKb)} (limit ${LIMIT_MIB} MiB)`);
console.log(`sutazai-backup restore: ${(restore.wallMs / 1000).toFixed(1)} s, peak RSS ${mib(restore.maxRssKb)} (limit ${LIMIT_MIB} MiB)`);
console.log(`tar | zstd -3 -T0:      ${(baseline.wallMs / 1000).toFixed(1)} s, peak RSS ${mib(baseline.maxRssKb)} (largest process ${mib(baseline.largestProcessKb)})`);
const ok = Math.max(backup.maxRssKb, restore.maxRssKb) / 1024 < LIMIT_MIB;
console.log(ok ? 'memory: flat (under the limit)' : 'memory: OVER THE LIMIT');
await fsp.rm(runDir, { recursive: true, force: true });
if (single) await fsp.rm(work, { recursive: true, force: true });
process.exitCode = ok ? 0 : 1;

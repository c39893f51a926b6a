#!/usr/bin/env node
// Memory stays flat: backs up one large file (default 2 GiB) with `sutazai-backup run` and prints
// its peak RSS beside `tar -cf - | zstd -3 -T0` of the same file, in the same run.
// Usage: node bench/memory.mjs [sizeGiB=2] [workDir]
import { existsSync, promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { CLI, measure, mib } from './lib/measure.mjs';

const sizeGiB = Number(process.argv[2] ?? 2);
const work = process.argv[3] ?? path.join(os.tmpdir(), 'sutazai-bench-memory');
const LIMIT_MIB = 200;

await fsp.rm(work, { recursive: true, force: true });
await fsp.mkdir(path.join(work, 'data'), { recursive: true });
const big = path.join(work, 'data', 'model.bin');
// 64 MiB of random bytes repeated: larger than zstd's window, so it does not compress.
const block = randomBytes(64 * 1024 * 1024);
const handle = await fsp.open(big, 'w');
for (let written = 0; written < sizeGiB * 1024 ** 3; written += block.length) await handle.write(block);
await handle.close();
await fsp.writeFile(path.join(work, '.sutazai-backuprc'), 'backupRoot: ./repo\nsources:\n  models: { use: files, paths: [./data] }\n');

console.log(`dataset: ${sizeGiB} GiB in one file (${big}); ${os.cpus().length} cores, node ${process.version}`);
const tool = await measure(process.execPath, [CLI, 'run'], { cwd: work, env: { SUTAZAI_BACKUP_LOG_LEVEL: 'warn' } });
if (tool.code !== 0) throw new Error(`sutazai-backup run failed: ${tool.stderr}`);
const baseline = existsSync('/usr/bin/zstd')
  ? await measure('sh', ['-c', `tar -cf - -C "${work}" data | zstd -3 -T0 -q -o "${work}/baseline.tar.zst"`])
  : undefined;

console.log(`sutazai-backup run: ${(tool.wallMs / 1000).toFixed(1)} s, peak RSS ${mib(tool.maxRssKb)} (limit ${LIMIT_MIB} MiB)`);
if (baseline) console.log(`tar | zstd -3 -T0:  ${(baseline.wallMs / 1000).toFixed(1)} s, peak RSS ${mib(baseline.maxRssKb)}`);
const ok = tool.maxRssKb / 1024 < LIMIT_MIB;
console.log(ok ? 'memory: flat (under the limit)' : 'memory: OVER THE LIMIT');
await fsp.rm(work, { recursive: true, force: true });
process.exitCode = ok ? 0 : 1;

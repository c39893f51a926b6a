#!/usr/bin/env node
// zstd backends side by side: `node bench/zstd-backends.mjs [--mb 256] [--reps 3]`.
// Each backend core can use (zstd-napi, node:zlib on Node 24, the zstd program) compresses a
// mixed file (half service logs, a quarter random, a quarter JavaScript sources) through core's
// zstd streams, then decompresses it, in a process of its own (wall time, peak RSS of the process
// and what it started); then `sutazai-backup run` (archive, verification, commit) of a folder
// holding that file with each backend, all on Node 24 (zstd-napi's build loads there too), so the
// whole pipeline is compared, not only the codec. Node 24 comes from scripts/node-binaries.mjs.
// Medians of interleaved reps.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, writeSync, writeFileSync, closeSync, statSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedNode } from '../scripts/node-binaries.mjs';
import { CLI, median, REPO_ROOT } from './lib/measure.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const MB = arg('mb', 256);
const REPS = arg('reps', 3);
const work = path.join(os.tmpdir(), 'sutazai-zstd-bench');
const input = path.join(work, `input-${MB}.bin`);

if (process.argv[2] === '--child') {
  const [, , , direction, from, to] = process.argv;
  const core = await import(path.join(REPO_ROOT, 'packages/core/dist/zstd/index.js'));
  const { createReadStream, createWriteStream } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  const codec = core.zstdCodec();
  const stage = direction === 'compress' ? codec.createCompressStream({ level: 3 }) : codec.createDecompressStream();
  await pipeline(createReadStream(from, { highWaterMark: 1 << 20 }), stage, createWriteStream(to));
  process.exit(0);
}

function makeInput() {
  if (existsSync(input)) return;
  mkdirSync(work, { recursive: true });
  const fd = openSync(input, 'w');
  const quarter = (MB << 20) / 4;
  let written = 0;
  let t = Date.UTC(2026, 10, 26);
  while (written < 2 * quarter) {
    const lines = [];
    for (let i = 0; i < 5000; i++) {
      t += (i * 7919) % 50;
      lines.push(`${new Date(t).toISOString()} ${['INFO', 'WARN', 'DEBUG'][i % 3]} svc=${['api', 'worker', 'gateway'][i % 3]} req=${((i * 2654435761) >>> 0).toString(16)} ms=${(i * 31) % 900} msg="request completed"`);
    }
    written += writeSync(fd, `${lines.join('\n')}\n`);
  }
  writeSync(fd, randomBytes(quarter));
  // JavaScript sources: the workspace's own dependencies, as a tar stream.
  const tar = spawnSync('sh', ['-c', `tar -cf - -C ${REPO_ROOT}/node_modules/.pnpm . 2>/dev/null | head -c ${quarter}`], { maxBuffer: quarter + 1024 });
  writeSync(fd, tar.stdout);
  closeSync(fd);
}

const TIME = `
import resource, subprocess, sys, time, json
t0 = time.monotonic()
code = subprocess.call(sys.argv[1:])
print(json.dumps({"code": code, "ms": (time.monotonic() - t0) * 1000, "rssKb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
`;

function once(node, backend, direction, from, to) {
  const r = spawnSync('python3', ['-c', TIME, node, fileURLToPath(import.meta.url), '--child', direction, from, to], {
    env: { ...process.env, SUTAZAI_BACKUP_ZSTD: backend },
    encoding: 'utf8',
  });
  const result = JSON.parse(r.stdout.trim().split('\n').at(-1));
  if (result.code !== 0) throw new Error(`${backend} ${direction} failed: ${r.stderr}`);
  return result;
}

makeInput();
const node24 = cachedNode(24);
const backends = [
  ['zstd-napi (Node 20, 2 threads)', process.execPath, 'napi'],
  ['zstd program (zstd -3 -T0)', process.execPath, 'program'],
  ...(node24 ? [['node:zlib (Node 24, 1 thread)', node24, 'zlib']] : []),
];
const results = new Map(backends.map(([name]) => [name, { compress: [], decompress: [], crss: [], drss: [], bytes: 0 }]));
for (let rep = 0; rep < REPS; rep++) {
  for (const [name, node, key] of rep % 2 ? [...backends].reverse() : backends) {
    const r = results.get(name);
    const zst = path.join(work, `${key}.zst`);
    const c = once(node, key, 'compress', input, zst);
    const d = once(node, key, 'decompress', zst, path.join(work, `${key}.out`));
    r.bytes = statSync(zst).size;
    r.compress.push(c.ms);
    r.crss.push(c.rssKb);
    r.decompress.push(d.ms);
    r.drss.push(d.rssKb);
    rmSync(path.join(work, `${key}.out`));
  }
}
const size = statSync(input).size;
console.log(`${new Date().toISOString()}, ${os.cpus()[0]?.model}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}, ${(size / 2 ** 20).toFixed(0)} MiB, level 3, median of ${REPS}`);
console.log('| backend | compress | MB/s | peak RSS | decompress | MB/s | peak RSS | stored |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [name, r] of results) {
  const c = median(r.compress);
  const d = median(r.decompress);
  const rate = (ms) => ((size / 1e6) / (ms / 1000)).toFixed(0);
  console.log(`| ${name} | ${(c / 1000).toFixed(2)} s | ${rate(c)} | ${Math.round(median(r.crss) / 1024)} MiB | ${(d / 1000).toFixed(2)} s | ${rate(d)} | ${Math.round(median(r.drss) / 1024)} MiB | ${(r.bytes / 2 ** 20).toFixed(1)} MiB |`);
}

if (node24) {
  const project = path.join(work, 'project');
  rmSync(project, { recursive: true, force: true });
  mkdirSync(path.join(project, 'data'), { recursive: true });
  spawnSync('cp', [input, path.join(project, 'data', 'mixed.bin')]);
  const runs = new Map([['napi', []], ['zlib', []], ['program', []]]);
  for (let rep = 0; rep < REPS; rep++) {
    for (const key of rep % 2 ? [...runs.keys()].reverse() : runs.keys()) {
      const root = path.join(project, `backups-${key}`);
      rmSync(root, { recursive: true, force: true });
      writeFileSync(path.join(project, '.sutazai-backuprc'), `backupRoot: ./backups-${key}\nsources:\n  data: { use: files, paths: [./data] }\n`);
      const r = spawnSync('python3', ['-c', TIME, node24, CLI, 'run'], { cwd: project, env: { ...process.env, SUTAZAI_BACKUP_ZSTD: key }, encoding: 'utf8' });
      const result = JSON.parse(r.stdout.trim().split('\n').at(-1));
      if (result.code !== 0) throw new Error(`run with ${key} failed: ${r.stderr}`);
      runs.get(key).push(result);
    }
  }
  console.log(`\n\`sutazai-backup run\` of the same ${(size / 2 ** 20).toFixed(0)} MiB as one file, Node 24, median of ${REPS}:`);
  console.log('| backend | run (archive, verify, commit) | peak RSS |');
  console.log('|---|---|---|');
  for (const [key, r] of runs) console.log(`| ${key} | ${(median(r.map((x) => x.ms)) / 1000).toFixed(2)} s | ${Math.round(median(r.map((x) => x.rssKb)) / 1024)} MiB |`);
  rmSync(project, { recursive: true, force: true });
}

#!/usr/bin/env node
// Replication to S3: `sutazai-backup run` replicating its snapshot to an S3-compatible server
// (s3rver on loopback), beside `rclone copy` of the same snapshot files to the same server, in
// the same run. A warm-up round of both comes first, uncounted. Prints per-round times, medians,
// the ratio and peak RSS (of each command's whole process tree). Without rclone: a FAIL line and
// exit code 1.
// Usage: node bench/replicate-s3.mjs [sizeMiB=512] [rounds=3] [workDir]
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireCompetitors } from './lib/competitors.mjs';
import { CLI, REPO_ROOT, measure, median, mib } from './lib/measure.mjs';

const { rclone: rcloneBin } = requireCompetitors([{ name: 'rclone', command: 'rclone', install: 'apt-get install rclone' }]);

const sizeMiB = Number(process.argv[2] ?? 512);
const rounds = Number(process.argv[3] ?? 3);
const work = process.argv[4] ?? path.join(os.tmpdir(), 'sutazai-bench-replicate-s3');
const BUCKET = 'bench-replication';
const PART_MB = 8;
const QUEUE = 4;

await fsp.rm(work, { recursive: true, force: true });
await fsp.mkdir(path.join(work, 'data', 'configs'), { recursive: true });

// One large incompressible file (a 64 MiB random block repeated: larger than zstd's window) and
// a few hundred small files, as a model folder beside its configuration would be.
const block = randomBytes(Math.min(64, sizeMiB) * 1024 * 1024);
const handle = await fsp.open(path.join(work, 'data', 'model.bin'), 'w');
for (let written = 0; written < sizeMiB * 1024 * 1024; written += block.length) await handle.write(block);
await handle.close();
for (let i = 0; i < 300; i++) await fsp.writeFile(path.join(work, 'data', 'configs', `agent-${i}.json`), JSON.stringify({ i, pad: randomBytes(2048).toString('base64') }));

const S3rver = createRequire(path.join(REPO_ROOT, 'package.json'))('s3rver');
const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: path.join(work, 's3'), configureBuckets: [{ name: BUCKET }] });
const { port } = await s3.run();
const endpoint = `http://127.0.0.1:${port}`;

await fsp.writeFile(
  path.join(work, '.sutazai-backuprc'),
  [
    'backupRoot: ./repo',
    'host: bench',
    'retention: { last: 50 }',
    'sources:',
    '  model: { use: files, paths: [./data] }',
    'destinations:',
    '  offsite:',
    '    use: s3',
    `    bucket: ${BUCKET}`,
    `    endpoint: ${endpoint}`,
    '    forcePathStyle: true',
    '    accessKeyId: S3RVER',
    '    secretAccessKey: ${BENCH_S3_SECRET}',
    `    partSizeMB: ${PART_MB}`,
    `    queueSize: ${QUEUE}`,
    ...(process.env.BENCH_S3_CHECKSUM ? [`    checksum: ${process.env.BENCH_S3_CHECKSUM}`] : []),
    '',
  ].join('\n'),
);

const rcloneEnv = {
  RCLONE_CONFIG_BENCH_TYPE: 's3',
  RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
  RCLONE_CONFIG_BENCH_ENDPOINT: endpoint,
  RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
  RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: 'S3RVER',
  RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: 'S3RVER',
  RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  // A CA bundle from the environment makes rclone's S3 client refuse its own HTTP transport; the
  // endpoint is plain HTTP on loopback anyway.
  AWS_CA_BUNDLE: '',
};

console.log(`dataset: ${sizeMiB} MiB model + 300 small files; ${os.cpus().length} cores, node ${process.version}; part size ${PART_MB} MiB, ${QUEUE} parts at once for both tools`);
const results = [];
try {
  // Round 0 is the warm-up: printed, not counted.
  for (let round = 0; round <= rounds; round++) {
    const reportFile = path.join(work, `report-${round}.json`);
    const tool = await measure('sh', ['-c', `"${process.execPath}" "${CLI}" run --json > "${reportFile}"`], {
      cwd: work,
      env: { SUTAZAI_BACKUP_LOG_LEVEL: 'warn', BENCH_S3_SECRET: 'S3RVER' },
    });
    const report = JSON.parse(await fsp.readFile(reportFile, 'utf8'));
    if (tool.code !== 0 || report.status !== 'success') throw new Error(`sutazai-backup run failed: ${tool.stderr}\n${JSON.stringify(report.errors)}`);
    const offsite = report.destinations.find((d) => d.name === 'offsite');
    const snapshotDir = path.join(work, 'repo', 'snapshots', report.snapshot);
    const rclone = await measure(
      rcloneBin,
      ['copy', snapshotDir, `bench:${BUCKET}/rclone/${report.snapshot}`, '--s3-chunk-size', `${PART_MB}M`, '--s3-upload-concurrency', String(QUEUE), '--transfers', '4'],
      { env: rcloneEnv },
    );
    if (rclone.code !== 0) throw new Error(`rclone copy failed: ${rclone.stderr}`);
    const r = { round, bytes: offsite.bytes, toolMs: offsite.durationMs, toolRunMs: tool.wallMs, toolRss: tool.maxRssKb, rcloneMs: rclone.wallMs, rcloneRss: rclone.maxRssKb };
    if (round > 0) results.push(r);
    console.log(
      `${round > 0 ? `round ${round}` : 'warm-up'}: ${(r.bytes / 1048576).toFixed(0)} MiB; sutazai-backup replicate ${(r.toolMs / 1000).toFixed(2)} s ` +
        `(whole run ${(r.toolRunMs / 1000).toFixed(1)} s, peak RSS ${mib(r.toolRss)}); rclone copy ${(r.rcloneMs / 1000).toFixed(2)} s (peak RSS ${mib(r.rcloneRss)})`,
    );
  }
} finally {
  await s3.close();
  await fsp.rm(work, { recursive: true, force: true });
}

const toolMs = median(results.map((r) => r.toolMs));
const rcloneMs = median(results.map((r) => r.rcloneMs));
const mibs = results[0].bytes / 1048576;
console.log(`median: sutazai-backup replicate ${(toolMs / 1000).toFixed(2)} s (${(mibs / (toolMs / 1000)).toFixed(0)} MiB/s), rclone copy ${(rcloneMs / 1000).toFixed(2)} s (${(mibs / (rcloneMs / 1000)).toFixed(0)} MiB/s)`);
console.log(`ratio sutazai-backup / rclone: ${(toolMs / rcloneMs).toFixed(2)} (below 1: faster than rclone)`);
console.log(`peak RSS: sutazai-backup run ${mib(Math.max(...results.map((r) => r.toolRss)))}, rclone ${mib(Math.max(...results.map((r) => r.rcloneRss)))}`);

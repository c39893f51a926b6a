#!/usr/bin/env node
// Start-up of the command line: `node bench/startup.mjs [--runs 20] [--node PATH]`.
// Wall time of `sutazai-backup --help` and of `list` (an rc file with a files and a sqlite source,
// a local destination and gpg encryption, so that the plugins load; an empty repository), beside
// `node -e 0`, interleaved; medians and each one's ratio to Node alone. Target: ≤ 150 ms each.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, median } from './lib/measure.mjs';

const option = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const runs = Number(option('runs', 20));
const node = option('node', process.execPath);
// Another build of the command line to compare (e.g. an older checkout's packages/cli/dist/bin.js).
const cli = option('cli', CLI);
const project = mkdtempSync(path.join(os.tmpdir(), 'sutazai-startup-'));
writeFileSync(
  path.join(project, '.sutazai-backuprc'),
  [
    'backupRoot: ./backups',
    'encryption: { use: gpg, passphrase: "start-up bench passphrase" }',
    'sources:',
    '  configs: { use: files, paths: [./config] }',
    '  agents: { use: sqlite, path: ./agents.db }',
    'destinations:',
    '  drive: { use: local, path: ./drive }',
    '',
  ].join('\n'),
);

const cases = [
  ['node -e 0', ['-e', '0']],
  ['sutazai-backup --help', [cli, '--help']],
  ['sutazai-backup list', [cli, 'list']],
];
const times = new Map(cases.map(([name]) => [name, []]));
for (let i = 0; i < runs + 1; i++) {
  for (const [name, args] of cases) {
    const t = process.hrtime.bigint();
    const r = spawnSync(node, args, { cwd: project, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
    if (i > 0) times.get(name).push(ms); // the first round warms the page cache and the compile cache
  }
}
rmSync(project, { recursive: true, force: true });
const base = median(times.get('node -e 0'));
const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.log(`${new Date().toISOString()}, Node ${version}, ${os.cpus()[0]?.model}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}, median of ${runs}`);
console.log('| command | median | × node -e 0 |');
console.log('|---|---|---|');
for (const [name] of cases) {
  const m = median(times.get(name));
  console.log(`| ${name} | ${m.toFixed(0)} ms | ${(m / base).toFixed(2)} |`);
}

#!/usr/bin/env node
// What encryption costs: the same `sutazai-backup run` unencrypted and with `encryption: gpg`,
// against stock gpg on the same compressed data (what a user would otherwise script), in the
// same run, rounds interleaved so that load on the machine hits every variant alike.
//
// The target: the tool's encryption (encrypted run − unencrypted run) costs no more than stock
// `gpg --symmetric` of the same .tar.zst, within 10%; exits 1 otherwise. The encrypted run also
// decrypts every artifact once (its verification), so stock `gpg --symmetric` + `gpg --decrypt` is
// shown too, like for like. `--compress-algo none` is what the tool writes (the data is already
// zstd-compressed); stock gpg's default options (zlib again) are shown as well.
//
//   node bench/encryption.mjs [--mb 256] [--rounds 3] [--json]
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'packages/cli/dist/bin.js');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const totalMb = Number(arg('mb', '256'));
const rounds = Number(arg('rounds', '3'));
const passphrase = randomBytes(24).toString('base64');

const work = mkdtempSync(path.join(os.tmpdir(), 'sutazai-bench-encryption-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// Data that compresses about 2:1 like a mix of logs, configs and binaries: each 4 MiB file is
// half random bytes, half repetitive text.
const src = path.join(work, 'src');
mkdirSync(src);
const text = Buffer.from('2026-11-26T02:00:00Z INFO request served path=/api/v1/agents status=200 ms=12\n'.repeat(30000)).subarray(0, 2 * 1024 * 1024);
for (let i = 0; i < totalMb / 4; i++) writeFileSync(path.join(src, `part-${i}.dat`), Buffer.concat([randomBytes(2 * 1024 * 1024), text]));

function rc(dir, encrypted) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, '.sutazai-backuprc'),
    `backupRoot: ./backups\nhost: bench\n${encrypted ? 'encryption: { use: gpg, passphrase: "${PW}" }\n' : ''}sources:\n  data: { use: files, paths: [${src}] }\n`,
    { mode: 0o600 },
  );
}

/** Runs a command under /usr/bin/time: wall seconds and peak RSS (MiB) of the process tree's largest member. */
function timed(cmd, args, options = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], { ...options, encoding: 'buffer', maxBuffer: 1 << 30 });
  const [wall, rssKb] = r.stderr.toString().trim().split('\n').at(-1).split(' ').map(Number);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.toString().slice(-2000)}`);
  return { wall, rssMb: rssKb / 1024 };
}

function toolRun(encrypted, round) {
  const dir = path.join(work, `${encrypted ? 'enc' : 'plain'}-${round}`);
  rc(dir, encrypted);
  const t = timed(process.execPath, [cli, 'run', '--log-level', 'warn'], { cwd: dir, env: { ...process.env, PW: passphrase } });
  const snapshots = path.join(dir, 'backups/snapshots');
  const id = readdirSync(snapshots)[0];
  return { ...t, artifact: path.join(snapshots, id, readdirSync(path.join(snapshots, id)).find((f) => f !== 'manifest.json')) };
}

function stockGpg(args, input, output) {
  const home = mkdtempSync(path.join(work, 'gnupg-'));
  const pw = path.join(home, 'pw');
  writeFileSync(pw, passphrase, { mode: 0o600 });
  try {
    return timed('gpg', ['--homedir', home, '--batch', '--yes', '--quiet', '--pinentry-mode', 'loopback', '--passphrase-file', pw, ...args, '--output', output, input]);
  } finally {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
  }
}

const samples = { plain: [], encrypted: [], stockEnc: [], stockEncDefault: [], stockDec: [] };
let compressedBytes = 0;
for (let round = 0; round < rounds; round++) {
  const plain = toolRun(false, round);
  samples.plain.push(plain);
  samples.encrypted.push(toolRun(true, round));
  const zst = plain.artifact;
  compressedBytes = Number(spawnSync('stat', ['-c', '%s', zst], { encoding: 'utf8' }).stdout.trim());
  const out = path.join(work, `stock-${round}.gpg`);
  samples.stockEnc.push(stockGpg(['--symmetric', '--cipher-algo', 'AES256', '--compress-algo', 'none', '--s2k-mode', '3', '--s2k-digest-algo', 'SHA512', '--s2k-count', '65011712'], zst, out));
  samples.stockEncDefault.push(stockGpg(['--symmetric'], zst, `${out}.default`));
  samples.stockDec.push(stockGpg(['--decrypt'], out, path.join(work, `stock-${round}.zst`)));
  for (const f of [out, `${out}.default`, path.join(work, `stock-${round}.zst`)]) rmSync(f, { force: true });
  rmSync(path.join(work, `plain-${round}`), { recursive: true, force: true });
  rmSync(path.join(work, `enc-${round}`), { recursive: true, force: true });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, { wall: median(v.map((s) => s.wall)), rssMb: Math.max(...v.map((s) => s.rssMb)) }]));
const toolCost = m.encrypted.wall - m.plain.wall;
const stockCost = m.stockEnc.wall + m.stockDec.wall;
// Which AES the plugin used (its addon, or node:crypto when the addon was not built).
const backend = await import(path.join(root, 'plugins/gpg/dist/cfb.js')).then((m) => m.cfbBackend());
const result = {
  date: new Date().toISOString(),
  aes: backend,
  machine: `${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, load ${os.loadavg()[0].toFixed(1)}`,
  gpg: spawnSync('gpg', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0],
  dataMb: totalMb,
  compressedMb: +(compressedBytes / 2 ** 20).toFixed(1),
  rounds,
  medians: m,
  toolEncryptionCostSeconds: +toolCost.toFixed(2),
  stockGpgSeconds: { symmetric: m.stockEnc.wall, symmetricDefault: m.stockEncDefault.wall, decrypt: m.stockDec.wall, symmetricPlusDecrypt: +stockCost.toFixed(2) },
  // The target (issue 6): no more than stock `gpg --symmetric` alone, within 10%, although the
  // run also decrypts everything once to verify it.
  ratio: +(toolCost / m.stockEnc.wall).toFixed(2),
  ratioToEncryptPlusDecrypt: +(toolCost / stockCost).toFixed(2),
  withinTenPercent: toolCost <= m.stockEnc.wall * 1.1,
};

if (process.argv.includes('--json')) console.log(JSON.stringify(result, null, 2));
else {
  const row = (name, s) => `| ${name} | ${s.wall.toFixed(2)} s | ${s.rssMb.toFixed(0)} MiB |`;
  console.log(`${result.date}: ${result.machine}; ${result.gpg}; the plugin's AES: ${backend}`);
  console.log(`${totalMb} MiB of data (${result.compressedMb} MiB after zstd), median of ${rounds} interleaved rounds\n`);
  console.log('| what | wall | peak RSS |\n|---|---|---|');
  console.log(row('sutazai-backup run, unencrypted', m.plain));
  console.log(row('sutazai-backup run, encryption: gpg', m.encrypted));
  console.log(row('stock gpg --symmetric --compress-algo none (the .tar.zst)', m.stockEnc));
  console.log(row('stock gpg --symmetric, default options', m.stockEncDefault));
  console.log(row('stock gpg --decrypt', m.stockDec));
  console.log(
    `\nencryption in the tool (encrypted run − unencrypted run, which includes decrypting once to verify): ${toolCost.toFixed(2)} s\n` +
      `stock gpg --symmetric alone: ${m.stockEnc.wall.toFixed(2)} s: ratio ${result.ratio} (${result.withinTenPercent ? 'within' : 'NOT within'} 10%)\n` +
      `stock gpg encrypt + decrypt (like for like): ${stockCost.toFixed(2)} s: ratio ${result.ratioToEncryptPlusDecrypt}`,
  );
}
process.exitCode = result.withinTenPercent ? 0 : 1;

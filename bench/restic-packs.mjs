#!/usr/bin/env node
// Throughput of the restic format's write path on this machine, one thread: Poly1305 alone (the
// backend in use, and noble's for comparison), encrypt+MAC
// (AES-256-CTR + Poly1305-AES) alone, open (MAC + decrypt), zstd alone, a pack builder
// (compress when smaller, seal, header), and ResticRepository.save + flush to a local folder
// (packs hashed, written, indexed). Input: chunks of a mixed stream, half random bytes, half
// log lines, like the probe.
//
//   node bench/restic-packs.mjs [--mb 256] [--chunk 1048576] [--json]
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const load = (m) => import(pathToFileURL(path.join(root, 'packages/core/dist', m)).href);
const { MasterKey } = await load('restic/crypto.js');
const { PackBuilder } = await load('restic/pack.js');
const { compressTransient } = await load('restic/zstd.js');
const { ResticRepository } = await load('restic/repository.js');
const { LocalDestination } = await load('destination.js');
const { noble, poly1305Backend } = await load('restic/poly1305.js');

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const MiB = 1024 * 1024;
const totalMb = Number(arg('mb', '256'));
const chunk = Number(arg('chunk', String(MiB)));

const text = Buffer.from('2026-11-26T02:00:00Z INFO request served path=/api/v1/agents status=200 ms=12\n'.repeat(Math.ceil(chunk / 70))).subarray(0, chunk);
const chunks = Array.from({ length: 16 }, (_, i) => (i % 2 ? Buffer.from(text) : randomBytes(chunk)));
const count = Math.floor((totalMb * MiB) / chunk);
const ids = chunks.map((c) => createHash('sha256').update(c).digest());

function rate(label, fn) {
  const t = performance.now();
  const bytes = fn();
  const s = (performance.now() - t) / 1000;
  return [label, +(bytes / s / MiB).toFixed(0)];
}

const key = MasterKey.random();
const out = Buffer.allocUnsafe(chunk + 64);
const sealed = key.seal(chunks[0]);
const tag = Buffer.alloc(16);
const polyKey = randomBytes(32);
const results = [
  ...[poly1305Backend(), noble].map((backend) =>
    rate(`Poly1305 alone (${backend.name})`, () => {
      for (let i = 0; i < count; i++) backend.mac(tag, chunks[i % 16], polyKey);
      return count * chunk;
    }),
  ),
  rate('encrypt+MAC (seal)', () => {
    for (let i = 0; i < count; i++) key.sealInto(chunks[i % 16], out, 0);
    return count * chunk;
  }),
  rate('MAC check + decrypt (open)', () => {
    for (let i = 0; i < count; i++) key.open(sealed, 'bench');
    return count * chunk;
  }),
  rate('zstd level 3 (half compressible)', () => {
    for (let i = 0; i < count; i++) compressTransient(chunks[i % 16]);
    return count * chunk;
  }),
  rate('pack builder (compress when smaller, seal)', () => {
    let builder = new PackBuilder(key, 'data', Buffer.allocUnsafe(17 * MiB));
    for (let i = 0; i < count; i++) {
      builder.add(ids[i % 16], chunks[i % 16], true);
      if (builder.size >= 16 * MiB) {
        builder.finish();
        builder = new PackBuilder(key, 'data', builder.buffer);
      }
    }
    return count * chunk;
  }),
];

// End to end: distinct chunks (the first bytes vary), saved, packed, hashed and written, flushed;
// sealed on the crypto threads (the default) and on the calling thread.
for (const cryptoThreads of [true, false]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sutazai-bench-restic-'));
  try {
    const repo = await ResticRepository.init(new LocalDestination(dir), { password: 'bench', kdf: { N: 1024, r: 8, p: 1 }, cryptoThreads });
    const t = performance.now();
    for (let i = 0; i < count; i++) {
      const c = chunks[i % 16];
      c.writeUInt32LE(i + (cryptoThreads ? 0 : count), 0);
      await repo.save('data', createHash('sha256').update(c).digest('hex'), c);
    }
    await repo.flush();
    const s = (performance.now() - t) / 1000;
    const how = cryptoThreads ? 'on crypto threads' : 'on this thread';
    results.push([`ResticRepository.save + flush to a local folder (incl. sha256 of chunks), ${how}`, +((count * chunk) / s / MiB).toFixed(0)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Packs in memory are bounded (two uploading, one filling per type): peak RSS must not grow with --mb.
const peakRssMiB = +(process.resourceUsage().maxRSS / 1024).toFixed(0);
if (process.argv.includes('--json')) console.log(JSON.stringify({ ...Object.fromEntries(results), peakRssMiB }));
else {
  console.log(`${totalMb} MiB in ${(chunk / 1024).toFixed(0)} KiB chunks, one thread; MACs by ${poly1305Backend().name}:`);
  for (const [label, mibs] of results) console.log(`  ${label.padEnd(96)} ${String(mibs).padStart(5)} MiB/s`);
  console.log(`  peak RSS of the process: ${peakRssMiB} MiB`);
}

#!/usr/bin/env node
// The restic format's in-memory index: RSS and array bytes for N blobs (default 1,000,000), and
// lookup speed. The budget is 200 MB peak RSS for a run whose repository holds 1 M
// chunks; the index must be a small share of that. Runs in a fresh process so RSS is its own.
//
//   node bench/restic-index.mjs [--blobs 1000000] [--json]
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { BlobIndex } = await import(pathToFileURL(path.join(root, 'packages/core/dist/restic/blob-index.js')).href);
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const n = Number(arg('blobs', '1000000'));
const MiB = 1024 * 1024;

// Stand-in ids: uniformly random like sha256 ids, from a seeded xorshift into one reused buffer,
// so that the measured memory is the index's and not the garbage of making ids.
const id = Buffer.alloc(32);
const words = new Uint32Array(id.buffer, id.byteOffset, 8);
function fillId(i) {
  let x = (i + 1) * 2654435761;
  for (let w = 0; w < 8; w++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[w] = x >>> 0;
  }
  return id;
}

global.gc?.();
const before = process.memoryUsage();
const index = new BlobIndex();
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  fillId(i);
  index.add(i % 50 ? 'data' : 'tree', id, { pack: i >> 4, offset: (i & 15) * 1_048_576, length: 1_048_608, uncompressedLength: 1_200_000 });
}
const addSeconds = (performance.now() - t0) / 1000;
global.gc?.();
const after = process.memoryUsage();

const hex = [];
for (let i = 0; i < 100_000; i++) hex.push([(i * 7919) % n, fillId((i * 7919) % n).toString('hex')]);
const t1 = performance.now();
let found = 0;
for (const [i, h] of hex) if (index.lookup(i % 50 ? 'data' : 'tree', h) >= 0) found++;
const lookupSeconds = (performance.now() - t1) / 1000;
if (found !== hex.length) throw new Error(`lookup found ${found} of ${hex.length}`);

const result = {
  blobs: n,
  indexArraysMiB: +(index.byteLength / MiB).toFixed(1),
  rssGrowthMiB: +((after.rss - before.rss) / MiB).toFixed(1),
  peakRssMiB: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
  bytesPerBlob: +(index.byteLength / n).toFixed(1),
  addPerSecond: Math.round(n / addSeconds),
  lookupsPerSecond: Math.round(hex.length / lookupSeconds),
};
if (process.argv.includes('--json')) console.log(JSON.stringify(result));
else {
  console.log(`index of ${n.toLocaleString()} blobs: ${result.indexArraysMiB} MiB of arrays (${result.bytesPerBlob} bytes/blob)`);
  console.log(`RSS grew ${result.rssGrowthMiB} MiB; peak RSS of this process ${result.peakRssMiB} MiB (budget for a whole run: 200 MB)`);
  console.log(`adds ${result.addPerSecond.toLocaleString()}/s, lookups by hex id ${result.lookupsPerSecond.toLocaleString()}/s`);
}

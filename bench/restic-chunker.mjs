#!/usr/bin/env node
// Throughput and dedup of the two content-defined chunkers (restic's Rabin fingerprint and
// FastCDC's gear hash) on one core, in memory: half random bytes, half log lines, like the
// platform's data. Prints MiB/s for cutting alone and with sha256 per chunk (best of the runs,
// by this process's CPU time, which a busy machine disturbs less than wall time), the mean chunk
// size, and how many chunks of a file survive an insertion of 100 bytes near its start.
// Usage: node bench/restic-chunker.mjs [sizeMiB=256] [--reps N=3]   (build packages/core first)
import { createHash, randomBytes } from 'node:crypto';
import { RabinChunker } from '../packages/core/dist/restic/rabin.js';
import { FastCdcChunker } from '../packages/core/dist/restic/fastcdc.js';

const args = process.argv.slice(2);
const repsAt = args.indexOf('--reps');
const reps = repsAt >= 0 ? Number(args.splice(repsAt, 2)[1]) : 3;
const sizeMiB = Number(args[0] ?? 256);

function dataset(bytes) {
  const buf = Buffer.allocUnsafe(bytes);
  randomBytes(bytes / 2).copy(buf, 0);
  let off = bytes / 2;
  let n = 0;
  while (off < bytes) {
    const line = `2024-05-0${n % 9 + 1}T12:${String(n % 60).padStart(2, '0')}:00Z level=info msg="request done" path=/api/v1/items/${n * 7919 % 100000} status=200 ms=${n % 997}\n`;
    off += buf.write(line, off);
    n++;
  }
  return buf;
}

function cuts(chunker, buf, onChunk) {
  chunker.reset();
  let start = 0;
  let pos = 0;
  const block = 8 * 1024 * 1024;
  let count = 0;
  while (pos < buf.length) {
    const end = Math.min(buf.length, pos + block);
    const cut = chunker.findCut(buf, pos, end);
    if (cut < 0) {
      pos = end;
      continue;
    }
    onChunk?.(buf.subarray(start, cut));
    count++;
    start = pos = cut;
  }
  if (start < buf.length) {
    onChunk?.(buf.subarray(start));
    count++;
  }
  return count;
}

const buf = dataset(sizeMiB * 1024 * 1024);
const polynomial = '3dea92648f6e83';
const chunkers = {
  rabin: () => new RabinChunker(polynomial),
  fastcdc: () => new FastCdcChunker(polynomial),
};
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const mibs = (ms) => ((sizeMiB / ms) * 1000).toFixed(0);
for (const [name, make] of Object.entries(chunkers)) {
  const c = make();
  let best = Infinity;
  let bestHashed = Infinity;
  let count = 0;
  for (let r = 0; r < reps; r++) {
    let t = cpuMs();
    count = cuts(c, buf);
    best = Math.min(best, cpuMs() - t);
    t = cpuMs();
    cuts(c, buf, (chunk) => createHash('sha256').update(chunk).digest('hex'));
    bestHashed = Math.min(bestHashed, cpuMs() - t);
  }
  // Dedup after an insertion: ids of a 64 MiB slice before and after 100 bytes go in at 1 MiB.
  const slice = buf.subarray(0, 64 * 1024 * 1024);
  const ids = (b) => {
    const out = [];
    cuts(c, b, (chunk) => out.push(createHash('sha256').update(chunk).digest('hex')));
    return out;
  };
  const before = ids(slice);
  const edited = Buffer.concat([slice.subarray(0, 1 << 20), randomBytes(100), slice.subarray(1 << 20)]);
  const after = ids(edited);
  const kept = after.filter((id) => before.includes(id)).length;
  console.log(
    `${name.padEnd(8)} cut ${mibs(best)} MiB/s, cut+sha256 ${mibs(bestHashed)} MiB/s, ` +
      `${count} chunks, mean ${(sizeMiB / count).toFixed(2)} MiB; after an insertion ${kept}/${after.length} chunks reused`,
  );
}

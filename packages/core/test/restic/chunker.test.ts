import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkReader, streamSource, type ByteSource } from '../../src/restic/chunk-reader.js';
import type { ContentChunker } from '../../src/restic/chunker.js';
import { FastCdcChunker } from '../../src/restic/fastcdc.js';
import { RabinChunker, chunkerPolynomial } from '../../src/restic/rabin.js';
import { latestSnapshot, restic } from './restic-cli.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const POLY = '3dea92648f6e83';

/** Cut points of `data` fed to the chunker in one piece. */
function cutsOf(chunker: ContentChunker, data: Buffer): number[] {
  chunker.reset();
  const cuts: number[] = [];
  let start = 0;
  while (start < data.length) {
    const cut = chunker.findCut(data, start, data.length);
    if (cut < 0) break;
    cuts.push(cut);
    start = cut;
  }
  return cuts;
}

/** A source that hands out at most `step` bytes per read, like a slow pipe. */
function bufferSource(data: Buffer, step: number): ByteSource {
  let at = 0;
  return {
    async read(buf, offset, length) {
      const n = Math.min(length, step, data.length - at);
      data.copy(buf, offset, at, at + n);
      at += n;
      return n;
    },
  };
}

describe("restic's Rabin chunker", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rabin-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('cuts a file where restic cuts it, given the repository polynomial', async () => {
    const repo = path.join(dir, 'repo');
    await restic(repo, ['init', '--repository-version', '2']);
    const data = randomBytes(7 * 1024 * 1024);
    await writeFile(path.join(dir, 'file'), data);
    await restic(repo, ['backup', path.join(dir, 'file')]);
    const polynomial = JSON.parse(await restic(repo, ['cat', 'config'])).chunker_polynomial as string;
    const snapshot = await latestSnapshot(repo);
    let nodes: { name: string; subtree?: string; content?: string[] }[] = JSON.parse(await restic(repo, ['cat', 'blob', snapshot.tree])).nodes;
    for (const name of path.join(dir, 'file').split('/').slice(1, -1)) {
      nodes = JSON.parse(await restic(repo, ['cat', 'blob', nodes.find((n) => n.name === name)!.subtree!])).nodes;
    }
    const theirs = nodes.find((n) => n.name === 'file')!.content!;
    expect(theirs.length).toBeGreaterThan(2);

    const ours: string[] = [];
    let start = 0;
    for (const cut of [...cutsOf(new RabinChunker(polynomial), data), data.length]) {
      if (cut > start) ours.push(sha(data.subarray(start, cut)));
      start = cut;
    }
    expect(ours).toEqual(theirs);
  });

  it('refuses a polynomial restic would not make', () => {
    expect(() => chunkerPolynomial('zz')).toThrow(/not hex for an irreducible polynomial/);
    expect(() => chunkerPolynomial('3dea92648f6e82')).toThrow(/not hex for an irreducible polynomial/);
    expect(() => chunkerPolynomial('b')).toThrow(/degree 3/);
    expect(chunkerPolynomial(POLY)).toBe(0x3dea92648f6e83n);
  });
});

describe.each([
  ['FastCDC', () => new FastCdcChunker(POLY)],
  ['Rabin', () => new RabinChunker(POLY)],
])('%s chunker', (_name, make) => {
  const data = Buffer.concat([randomBytes(9 * 1024 * 1024), Buffer.alloc(9 * 1024 * 1024, 7), randomBytes(3 * 1024 * 1024)]);

  it('keeps chunks between the minimum and maximum size, and cuts a run of zeros at the maximum', () => {
    const c = make();
    const cuts = cutsOf(c, data);
    let start = 0;
    for (const cut of cuts) {
      expect(cut - start).toBeGreaterThanOrEqual(c.minSize);
      expect(cut - start).toBeLessThanOrEqual(c.maxSize);
      start = cut;
    }
    // 9 MiB of one byte value has no content to cut at: only the maximum size does.
    expect(cuts.some((cut, i) => cut - (cuts[i - 1] ?? 0) === c.maxSize)).toBe(true);
  });

  it('finds the same cuts whatever the read sizes, through the ChunkReader and its buffer slots', async () => {
    const whole = cutsOf(make(), data);
    const reader = new ChunkReader(make(), { readSize: 1024 * 1024, slots: 2 });
    for (const step of [1024 * 1024, 65536 + 17, 3 * 1024 * 1024]) {
      const seen: Buffer[] = [];
      const ids: string[] = [];
      const total = await reader.read(bufferSource(data, step), async (chunk, id) => {
        ids.push(id);
        // Hold the view a while, as a store would: the reader must not reuse it meanwhile.
        await new Promise((r) => setTimeout(r, 1));
        seen.push(Buffer.from(chunk));
      });
      expect(total).toBe(data.length);
      expect(Buffer.concat(seen).equals(data)).toBe(true);
      expect(seen.map(sha)).toEqual(ids);
      let at = 0;
      expect(seen.slice(0, -1).map((b) => (at += b.length))).toEqual(whole);
    }
  });

  it('chunks a stream like the same bytes from a file', async () => {
    const reader = new ChunkReader(make(), { readSize: 2 * 1024 * 1024 });
    const fromStream: string[] = [];
    const pieces = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
    await reader.read(streamSource(Readable.from(pieces)), (_chunk, id) => void fromStream.push(id));
    const fromBuffer: string[] = [];
    await reader.read(bufferSource(data, data.length), (_chunk, id) => void fromBuffer.push(id));
    expect(fromStream).toEqual(fromBuffer);
  });

  it('keeps the chunks away from an insertion', () => {
    const base = randomBytes(24 * 1024 * 1024);
    const edited = Buffer.concat([base.subarray(0, 5_000_000), Buffer.from('inserted'), base.subarray(5_000_000)]);
    const ids = (b: Buffer) => {
      const out: string[] = [];
      let start = 0;
      for (const cut of [...cutsOf(make(), b), b.length]) {
        out.push(sha(b.subarray(start, cut)));
        start = cut;
      }
      return out;
    };
    const before = new Set(ids(base));
    const after = ids(edited);
    const changed = after.filter((id) => !before.has(id)).length;
    expect(changed).toBeGreaterThanOrEqual(1);
    expect(changed).toBeLessThanOrEqual(2);
  });
});

describe('FastCDC seeding', () => {
  it('cuts differently for another repository secret, the same for the same one', () => {
    const data = randomBytes(16 * 1024 * 1024);
    expect(cutsOf(new FastCdcChunker(POLY), data)).toEqual(cutsOf(new FastCdcChunker(POLY), data));
    expect(cutsOf(new FastCdcChunker(POLY), data)).not.toEqual(cutsOf(new FastCdcChunker('3dea92648f6e85'), data));
  });
});

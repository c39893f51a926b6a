import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MasterKey } from '../../src/restic/crypto.js';
import { PackBuilder, packSizeOf, readHeader, type PackedBlob } from '../../src/restic/pack.js';
import { decompressExact } from '../../src/restic/zstd.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();

function build(key: MasterKey, blobs: Buffer[], bufferSize = 64) {
  const builder = new PackBuilder(key, 'data', Buffer.alloc(bufferSize));
  for (const b of blobs) builder.add(sha(b), b, true);
  return builder.finish();
}

function header(key: MasterKey, bytes: Buffer, name = 'data/ab/abcd'): PackedBlob[] {
  const r = readHeader(key, bytes, bytes.length, name);
  if (!Array.isArray(r)) throw new Error('short tail');
  return r;
}

describe('packs', () => {
  it('packs blobs back to back with a sealed header, compressing only what shrinks', () => {
    const key = MasterKey.random();
    const text = Buffer.from('log line\n'.repeat(5000));
    const noise = randomBytes(3000);
    const pack = build(key, [text, noise, Buffer.alloc(0)]);
    expect(pack.id).toBe(createHash('sha256').update(pack.bytes).digest('hex'));
    const blobs = header(key, pack.bytes);
    expect(blobs.map((b) => [b.type, b.id.toString('hex'), b.offset])).toEqual([
      ['data', sha(text).toString('hex'), 0],
      ['data', sha(noise).toString('hex'), blobs[0]!.length],
      ['data', sha(Buffer.alloc(0)).toString('hex'), blobs[0]!.length + blobs[1]!.length],
    ]);
    expect(blobs[0]!.uncompressedLength).toBe(text.length);
    expect(blobs[0]!.length).toBeLessThan(text.length / 10);
    expect(blobs[1]!.uncompressedLength).toBe(0);
    expect(blobs[1]!.length).toBe(noise.length + 32);
    expect(packSizeOf(blobs)).toBe(pack.bytes.length);
    const first = key.open(pack.bytes.subarray(0, blobs[0]!.length), 'blob');
    expect(decompressExact(first, text.length, 'blob').equals(text)).toBe(true);
    expect(key.open(pack.bytes.subarray(blobs[0]!.length, blobs[0]!.length + blobs[1]!.length), 'blob').equals(noise)).toBe(true);
  });

  it('compresses every tree blob, even one zstd makes larger, as restic does (its prune repacks tree packs holding uncompressed blobs)', () => {
    const key = MasterKey.random();
    const builder = new PackBuilder(key, 'tree', Buffer.alloc(64));
    const tiny = Buffer.from('{"nodes":[]}\n');
    builder.add(sha(tiny), tiny, true);
    const [blob] = header(key, builder.finish().bytes);
    expect(blob!.uncompressedLength).toBe(tiny.length);
    expect(blob!.length).toBeGreaterThan(tiny.length + 32);
  });

  it('asks for more of the tail when the header is longer than what was read', () => {
    const key = MasterKey.random();
    const pack = build(key, Array.from({ length: 200 }, (_, i) => Buffer.from(`blob ${i}`)));
    const tail = pack.bytes.subarray(pack.bytes.length - 100);
    const r = readHeader(key, tail, pack.bytes.length, 'p');
    expect(r).toEqual({ need: pack.bytes.readUInt32LE(pack.bytes.length - 4) + 4 });
    expect(header(key, pack.bytes)).toHaveLength(200);
  });

  it('names the pack when it is truncated, padded, or its header altered', () => {
    const key = MasterKey.random();
    const pack = build(key, [Buffer.from('one'), Buffer.from('two')]);
    const truncated = pack.bytes.subarray(100);
    expect(() => header(key, Buffer.from(truncated))).toThrow(/data\/ab\/abcd: .*(does not fit|make)/);
    const cut = pack.bytes.subarray(0, pack.bytes.length - 10);
    expect(() => header(key, Buffer.from(cut))).toThrow(expect.objectContaining({ code: 'E_INTEGRITY' }));
    const padded = Buffer.concat([Buffer.from('x'), pack.bytes]);
    expect(() => header(key, padded)).toThrow(/blobs and header make \d+ bytes, the file has \d+/);
    const flipped = Buffer.from(pack.bytes);
    flipped[flipped.length - 10]! ^= 1;
    expect(() => header(key, flipped)).toThrow(/header of data\/ab\/abcd: the MAC does not match/);
    expect(() => header(MasterKey.random(), pack.bytes)).toThrow(/MAC does not match/);
  });

  it('grows its buffer for a blob larger than the pack size', () => {
    const key = MasterKey.random();
    const big = randomBytes(200_000);
    const pack = build(key, [Buffer.from('small'), big], 1024);
    expect(header(key, pack.bytes).map((b) => b.id.toString('hex'))).toEqual([sha(Buffer.from('small')).toString('hex'), sha(big).toString('hex')]);
  });
});

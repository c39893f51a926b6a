import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlobIndex, PackList } from '../../src/restic/blob-index.js';

const id = (n: number) => createHash('sha256').update(`blob ${n}`).digest();

describe('BlobIndex', () => {
  it('finds every blob it holds after growing, by hex or bytes, and no other', () => {
    const index = new BlobIndex();
    const n = 150_000; // past the first page of 64 Ki entries
    let added = 0;
    for (let i = 0; i < n; i++) {
      if (index.add(i % 7 ? 'data' : 'tree', id(i), { pack: i >> 4, offset: i * 10, length: 100 + i, uncompressedLength: i % 3 ? 0 : 1000 + i })) added++;
    }
    expect(added).toBe(n);
    expect(index.size).toBe(n);
    for (let i = 0; i < n; i += 97) {
      const type = i % 7 ? 'data' : 'tree';
      const e = index.lookup(type, id(i).toString('hex'));
      expect(index.location(e)).toEqual({ pack: i >> 4, offset: i * 10, length: 100 + i, uncompressedLength: i % 3 ? 0 : 1000 + i });
      expect(index.plaintextLength(e)).toBe(i % 3 ? 100 + i - 32 : 1000 + i);
      expect(index.has(type === 'data' ? 'tree' : 'data', id(i))).toBe(false);
    }
    expect(index.has('data', id(n + 1))).toBe(false);
  });

  it('keeps the first location of a blob added twice, and tells types apart', () => {
    const index = new BlobIndex();
    expect(index.add('data', id(1), { pack: 1, offset: 0, length: 40, uncompressedLength: 0 })).toBe(true);
    expect(index.add('data', id(1), { pack: 2, offset: 9, length: 40, uncompressedLength: 0 })).toBe(false);
    expect(index.add('tree', id(1), { pack: 3, offset: 0, length: 50, uncompressedLength: 0 })).toBe(true);
    expect(index.location(index.lookup('data', id(1))).pack).toBe(1);
    expect(index.location(index.lookup('tree', id(1))).pack).toBe(3);
    const seen: string[] = [];
    index.forEach((type, blob, where) => seen.push(`${type}:${Buffer.from(blob).toString('hex').slice(0, 8)}:${where.pack}`));
    expect(seen).toEqual([`data:${id(1).toString('hex').slice(0, 8)}:1`, `tree:${id(1).toString('hex').slice(0, 8)}:3`]);
  });

  it('refuses an id that is not 64 hex digits', () => {
    const index = new BlobIndex();
    expect(() => index.has('data', 'abc')).toThrow(/not a blob id/);
    expect(() => index.has('data', 'zz'.repeat(32))).toThrow(/not a blob id/);
  });
});

describe('PackList', () => {
  it('numbers packs before they have an id and finds them by id after', () => {
    const packs = new PackList();
    const a = packs.reserve();
    expect(packs.id(a)).toBeUndefined();
    packs.name(a, 'aa'.repeat(32));
    expect(packs.numberOf('aa'.repeat(32))).toBe(a);
    const b = packs.numberOf('bb'.repeat(32));
    expect(b).not.toBe(a);
    expect(packs.id(b)).toBe('bb'.repeat(32));
  });
});

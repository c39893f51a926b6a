import { describe, expect, it } from 'vitest';
import { compareSnapshotIds, isSnapshotId, makeSnapshotId, parseSnapshotId } from '../src/snapshot-id.js';

describe('snapshot ids', () => {
  it('sort by time and carry the profile', () => {
    const a = makeSnapshotId(new Date('2026-11-26T02:00:00Z'), 'daily');
    const b = makeSnapshotId(new Date('2026-11-26T02:00:01Z'), 'weekly');
    expect(a).toMatch(/^20261126T020000Z-daily-[0-9a-f]{4}$/);
    expect([b, a].sort()).toEqual([a, b]);
    expect(parseSnapshotId(a)).toEqual({ time: new Date('2026-11-26T02:00:00Z'), profile: 'daily' });
  });

  it('sort in the order they were taken within one second', () => {
    const ids = [5, 120, 121, 999].map((ms) => makeSnapshotId(new Date(Date.UTC(2026, 10, 26, 2, 0, 0, ms)), 'hourly'));
    expect([...ids].reverse().sort()).toEqual(ids);
    expect(ids.every((id) => /-hourly-[0-9a-f]{4}$/.test(id))).toBe(true);
  });

  it('carry the milliseconds times 16 plus one random nibble, in four hex digits', () => {
    for (const ms of [0, 1, 15, 16, 255, 256, 998, 999]) {
      const suffixes = new Set<number>();
      for (let i = 0; i < 64; i++) {
        const id = makeSnapshotId(new Date(Date.UTC(2026, 10, 26, 2, 0, 0, ms)), 'daily');
        const suffix = id.slice('20261126T020000Z-daily-'.length);
        expect(suffix).toMatch(/^[0-9a-f]{4}$/);
        expect(parseInt(suffix, 16) >> 4).toBe(ms);
        suffixes.add(parseInt(suffix, 16) & 0xf);
      }
      // The nibble is random: 64 draws of 16 values are not all one value.
      expect(suffixes.size).toBeGreaterThan(1);
    }
  });

  it('parse to the second, UTC, with the profile as written', () => {
    expect(parseSnapshotId('20261231T235958Z-My_Profile-2-0abc')).toEqual({ time: new Date('2026-12-31T23:59:58Z'), profile: 'My_Profile-2' });
    expect(parseSnapshotId('20240229T000000Z-d-0123456789abcdef')).toEqual({ time: new Date('2024-02-29T00:00:00Z'), profile: 'd' });
    expect(parseSnapshotId('01000101T000000Z-x-abcd')?.time.toISOString()).toBe('0100-01-01T00:00:00.000Z');
  });

  it('reject what is not an id', () => {
    for (const bad of [
      '20261126T020000Z-daily',
      '../20261126T020000Z-daily-abcd',
      '20261126T020000Z-daily-abcd/..',
      '20261126T020000Z-daily-abcd\n',
      ' 20261126T020000Z-daily-abcd',
      '20261126T020000Z--daily-abcd',
      '20261126T020000Z-dai.ly-abcd',
      '20261126T020000Z-daily-abc',
      '20261126T020000Z-daily-0123456789abcdef0',
      '20261126T020000Z-daily-ABCD',
      '20261126T020000-daily-abcd',
      '2026112T020000Z-daily-abcd',
    ]) {
      expect(parseSnapshotId(bad), bad).toBeUndefined();
      expect(isSnapshotId(bad), bad).toBe(false);
    }
  });

  it('reject impossible times instead of rolling them over', () => {
    for (const bad of [
      '20261399T020000Z-daily-abcd',
      '20261301T020000Z-daily-abcd',
      '20260001T020000Z-daily-abcd',
      '20260230T020000Z-daily-abcd',
      '20250229T020000Z-daily-abcd',
      '20261100T020000Z-daily-abcd',
      '20261126T240000Z-daily-abcd',
      '20261126T026000Z-daily-abcd',
      '20261126T020060Z-daily-abcd',
      // Date.UTC reads years 0-99 as 1900-1999.
      '00991126T020000Z-daily-abcd',
    ]) {
      expect(parseSnapshotId(bad), bad).toBeUndefined();
    }
    expect(isSnapshotId('20261126T020000Z-daily-abcd')).toBe(true);
  });

  it('compare as strings: by time first', () => {
    const a = '20261126T020000Z-weekly-ffff';
    const b = '20261126T020001Z-daily-0000';
    expect(compareSnapshotIds(a, b)).toBe(-1);
    expect(compareSnapshotIds(b, a)).toBe(1);
    expect(compareSnapshotIds(a, a)).toBe(0);
    expect([b, a, b].sort(compareSnapshotIds)).toEqual([a, b, b]);
  });
});

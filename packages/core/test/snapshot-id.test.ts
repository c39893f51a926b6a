import { describe, expect, it } from 'vitest';
import { makeSnapshotId, parseSnapshotId } from '../src/snapshot-id.js';

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

  it('reject what is not an id', () => {
    expect(parseSnapshotId('20261126T020000Z-daily')).toBeUndefined();
    expect(parseSnapshotId('../20261126T020000Z-daily-abcd')).toBeUndefined();
    expect(parseSnapshotId('20261399T020000Z-daily-abcd')).toBeUndefined();
    expect(parseSnapshotId('20260230T020000Z-daily-abcd')).toBeUndefined();
  });
});

/**
 * The edges of the retention policy: the exact bounds of `within` and of the clock-skew window,
 * durations in years and beyond any date, and the refusals as `--json` prints them. Expected
 * values are worked out from the calendar by hand.
 */
import { describe, expect, it } from 'vitest';
import type { BackupError } from '../src/errors.js';
import { applyRetention, describePolicy, parseDuration, type RetentionCandidate, type RetentionPolicy } from '../src/retention.js';

const now = new Date('2026-11-26T12:00:00Z');
const HOUR = 3_600_000;
const at = (ms: number, id: string): RetentionCandidate => ({ id, time: new Date(ms) });
const reasons = (snapshots: RetentionCandidate[], policy: RetentionPolicy) =>
  applyRetention(snapshots, policy, now).map((d) => [d.id, d.keep, d.reasons] as const);

function thrown(fn: () => unknown): ReturnType<BackupError['toJSON']> | undefined {
  try {
    fn();
  } catch (err) {
    return (err as BackupError).toJSON();
  }
  return undefined;
}

describe('within', () => {
  it('keeps a snapshot dated exactly at its bound, not one a millisecond older', () => {
    const bound = now.getTime() - 24 * HOUR;
    expect(reasons([at(bound - 1, 'older'), at(bound, 'edge'), at(now.getTime(), 'newest')], { within: '1d' })).toEqual([
      ['newest', true, ['newest', 'within 1d']],
      ['edge', true, ['within 1d']],
      ['older', false, []],
    ]);
  });

  it('a year back is the same calendar day a year earlier', () => {
    const bound = Date.UTC(2025, 10, 26, 12);
    expect(reasons([at(bound - 1, 'older'), at(bound, 'edge')], { within: '1y' })).toEqual([
      ['edge', true, ['newest', 'within 1y']],
      ['older', false, []],
    ]);
  });

  it('a duration beyond any date keeps everything', () => {
    const ancient = Date.UTC(1970, 0, 1);
    expect(reasons([at(now.getTime(), 'new'), at(ancient, 'old')], { within: '300000y' })).toEqual([
      ['new', true, ['newest', 'within 300000y']],
      ['old', true, ['within 300000y']],
    ]);
  });

  it('"0d" beside a count keeps nothing by itself', () => {
    // Two minutes ahead is within the clock skew: a normal snapshot, at or after "now minus 0d".
    expect(reasons([at(now.getTime() + 2 * 60_000, 'skewed'), at(now.getTime() - HOUR, 'earlier')], { daily: 1, within: '0d' })).toEqual([
      ['skewed', true, ['newest', 'daily 2026-11-26']],
      ['earlier', false, []],
    ]);
  });

  it('a count too large to be exact is not a duration', () => {
    expect(parseDuration('99999999999999999999d')).toBeUndefined();
    expect(parseDuration('9007199254740991h')).toEqual({ years: 0, months: 0, ms: 9007199254740991 * 3_600_000 });
  });
});

describe('the clock-skew window', () => {
  it('ends exactly 5 minutes after now: a snapshot there is a normal one, a millisecond later it is "future"', () => {
    const edge = now.getTime() + 5 * 60_000;
    expect(reasons([at(edge + 1, 'ahead'), at(edge, 'edge')], { last: 1 })).toEqual([
      ['ahead', true, ['future']],
      ['edge', true, ['newest', 'last 1']],
    ]);
  });
});

describe('refusals, as --json prints them', () => {
  it('an invalid policy that would keep something says what is invalid', () => {
    const policy = { daily: 7, keepDaily: 3 } as RetentionPolicy;
    const json = thrown(() => applyRetention([], policy, now));
    expect(json).toEqual({ code: 'E_RETENTION', message: expect.stringMatching(/^invalid retention policy: .*keepDaily/s), details: { policy } });
  });

  it('a policy that keeps nothing names it', () => {
    expect(thrown(() => applyRetention([], { last: 0 }, now))).toMatchObject({ code: 'E_RETENTION', details: { policy: { last: 0 } } });
  });

  it('a snapshot without a valid time is named, and nothing is decided', () => {
    const json = thrown(() => applyRetention([at(now.getTime(), 'fine'), { id: '20261126T020000Z-daily-0bad', time: new Date('nonsense') }], { last: 1 }, now));
    expect(json).toEqual({ code: 'E_RETENTION', message: 'snapshot 20261126T020000Z-daily-0bad has an invalid time', details: { id: '20261126T020000Z-daily-0bad' } });
  });
});

describe('describePolicy', () => {
  it('says "nothing" for a policy without rules', () => {
    expect(describePolicy({})).toBe('nothing');
    expect(describePolicy({ last: 0, within: '2w' })).toBe('within 2w');
  });
});

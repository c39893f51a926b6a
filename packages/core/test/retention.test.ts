import { describe, expect, it } from 'vitest';
import { isBackupError } from '../src/errors.js';
import {
  DEFAULT_RETENTION,
  applyRetention,
  describePolicy,
  parseDuration,
  retentionPolicySchema,
  type RetentionCandidate,
  type RetentionDecision,
  type RetentionPolicy,
} from '../src/retention.js';

// Expected values below are worked out by hand from the calendar, not produced by the code:
// 2026-11-26 is a Thursday in ISO week 2026-W48; 2026 is not a leap year.

const DAY = 86_400_000;
const now = new Date('2026-11-26T12:00:00Z');

// 400 daily snapshots at 02:00 UTC, 2025-10-23 (0400) ... 2026-11-26 (0001): the counter is one
// more than the number of days before 2026-11-26.
const history: RetentionCandidate[] = Array.from({ length: 400 }, (_, i) => {
  const time = new Date(Date.UTC(2026, 10, 26, 2) - i * DAY);
  const stamp = time.toISOString().replace(/[-:]/g, '').replace('.000', '');
  return { id: `${stamp}-daily-${String(i + 1).padStart(4, '0')}`, time };
});
const future: RetentionCandidate = { id: '20270101T020000Z-daily-f001', time: new Date('2027-01-01T02:00:00Z') };
const all = [...history, future].reverse(); // input order must not matter

const keptIds = (decisions: RetentionDecision[]): string[] => decisions.filter((d) => d.keep).map((d) => d.id);
const reasonsOf = (decisions: RetentionDecision[], id: string): string[] | undefined =>
  decisions.find((d) => d.id === id)?.reasons;

describe('applyRetention over 400 daily snapshots', () => {
  it('builds the history it claims to', () => {
    expect(history[0]!.id).toBe('20261126T020000Z-daily-0001');
    expect(history[399]!.id).toBe('20251023T020000Z-daily-0400');
  });

  it('daily 7 keeps the last seven days; the future snapshot does not steal a slot', () => {
    const decisions = applyRetention(all, { daily: 7 }, now);
    expect(decisions).toHaveLength(401);
    expect(keptIds(decisions)).toEqual([
      '20270101T020000Z-daily-f001',
      '20261126T020000Z-daily-0001',
      '20261125T020000Z-daily-0002',
      '20261124T020000Z-daily-0003',
      '20261123T020000Z-daily-0004',
      '20261122T020000Z-daily-0005',
      '20261121T020000Z-daily-0006',
      '20261120T020000Z-daily-0007',
    ]);
    expect(reasonsOf(decisions, '20270101T020000Z-daily-f001')).toEqual(['future']);
    expect(reasonsOf(decisions, '20261126T020000Z-daily-0001')).toEqual(['newest', 'daily 2026-11-26']);
    expect(reasonsOf(decisions, '20261120T020000Z-daily-0007')).toEqual(['daily 2026-11-20']);
    expect(decisions.find((d) => d.id === '20261119T020000Z-daily-0008')).toMatchObject({ keep: false, reasons: [] });
  });

  it('the default policy keeps 7 days, 4 ISO weeks and 12 months', () => {
    const decisions = applyRetention(all, DEFAULT_RETENTION, now);
    // Weeks: W48 (Mon 11-23..) -> 11-26, W47 -> Sun 11-22, W46 -> Sun 11-15, W45 -> Sun 11-08.
    // Months: the last day of each month from 2026-10 back to 2025-12, plus 11-26 for 2026-11.
    expect(keptIds(decisions)).toEqual([
      '20270101T020000Z-daily-f001',
      '20261126T020000Z-daily-0001',
      '20261125T020000Z-daily-0002',
      '20261124T020000Z-daily-0003',
      '20261123T020000Z-daily-0004',
      '20261122T020000Z-daily-0005',
      '20261121T020000Z-daily-0006',
      '20261120T020000Z-daily-0007',
      '20261115T020000Z-daily-0012',
      '20261108T020000Z-daily-0019',
      '20261031T020000Z-daily-0027',
      '20260930T020000Z-daily-0058',
      '20260831T020000Z-daily-0088',
      '20260731T020000Z-daily-0119',
      '20260630T020000Z-daily-0150',
      '20260531T020000Z-daily-0180',
      '20260430T020000Z-daily-0211',
      '20260331T020000Z-daily-0241',
      '20260228T020000Z-daily-0272',
      '20260131T020000Z-daily-0300',
      '20251231T020000Z-daily-0331',
    ]);
    expect(decisions.filter((d) => d.keep)).toHaveLength(21); // 7 + 2 more weeks + 11 more months + future
    expect(decisions.filter((d) => !d.keep)).toHaveLength(380);
    expect(reasonsOf(decisions, '20261126T020000Z-daily-0001')).toEqual([
      'newest',
      'daily 2026-11-26',
      'weekly 2026-W48',
      'monthly 2026-11',
    ]);
    expect(reasonsOf(decisions, '20261122T020000Z-daily-0005')).toEqual(['daily 2026-11-22', 'weekly 2026-W47']);
    expect(reasonsOf(decisions, '20261108T020000Z-daily-0019')).toEqual(['weekly 2026-W45']);
    expect(reasonsOf(decisions, '20251231T020000Z-daily-0331')).toEqual(['monthly 2025-12']);
  });

  it('yearly 3 keeps the newest of each year that has snapshots (only two do)', () => {
    const decisions = applyRetention(all, { yearly: 3 }, now);
    expect(keptIds(decisions)).toEqual([
      '20270101T020000Z-daily-f001',
      '20261126T020000Z-daily-0001',
      '20251231T020000Z-daily-0331',
    ]);
    expect(reasonsOf(decisions, '20251231T020000Z-daily-0331')).toEqual(['yearly 2025']);
  });

  it('last 3 keeps the three newest', () => {
    const decisions = applyRetention(all, { last: 3 }, now);
    expect(keptIds(decisions)).toEqual([
      '20270101T020000Z-daily-f001',
      '20261126T020000Z-daily-0001',
      '20261125T020000Z-daily-0002',
      '20261124T020000Z-daily-0003',
    ]);
    expect(reasonsOf(decisions, '20261126T020000Z-daily-0001')).toEqual(['newest', 'last 1']);
    expect(reasonsOf(decisions, '20261124T020000Z-daily-0003')).toEqual(['last 3']);
  });

  it('within 10d keeps what is newer than 2026-11-16T12:00Z', () => {
    const decisions = applyRetention(all, { within: '10d' }, now);
    const kept = keptIds(decisions);
    expect(kept).toHaveLength(11);
    expect(kept[0]).toBe('20270101T020000Z-daily-f001');
    expect(kept[1]).toBe('20261126T020000Z-daily-0001');
    expect(kept[10]).toBe('20261117T020000Z-daily-0010');
    expect(reasonsOf(decisions, '20261117T020000Z-daily-0010')).toEqual(['within 10d']);
    expect(reasonsOf(decisions, '20261116T020000Z-daily-0011')).toEqual([]);
  });

  it('within 1mo keeps what is newer than 2026-10-26T12:00Z', () => {
    const kept = keptIds(applyRetention(all, { within: '1mo' }, now));
    expect(kept).toHaveLength(32); // 10-27..10-31 and 11-01..11-26, plus the future one
    expect(kept.at(-1)).toBe('20261027T020000Z-daily-0031');
  });

  it('returns one decision per snapshot, newest first', () => {
    const decisions = applyRetention(all, { daily: 1 }, now);
    expect(decisions.map((d) => d.id)).toEqual([future, ...history].map((s) => s.id));
  });
});

describe('applyRetention rules', () => {
  const at = (iso: string, id: string, suspect?: boolean): RetentionCandidate => ({
    id,
    time: new Date(iso),
    ...(suspect === undefined ? {} : { suspect }),
  });

  it('keeps only the newest snapshot of a day for daily', () => {
    const snaps = [
      at('2026-11-25T01:00:00Z', 'a'),
      at('2026-11-25T17:00:00Z', 'b'),
      at('2026-11-25T09:00:00Z', 'c'),
      at('2026-11-26T03:00:00Z', 'd'),
      at('2026-11-26T08:00:00Z', 'e'),
    ];
    const decisions = applyRetention(snaps, { daily: 7 }, now);
    expect(decisions.map((d) => [d.id, d.keep])).toEqual([
      ['e', true],
      ['d', false],
      ['b', true],
      ['c', false],
      ['a', false],
    ]);
  });

  it('breaks ties in time by id descending', () => {
    const snaps = [at('2026-11-26T02:00:00Z', 'x-1'), at('2026-11-26T02:00:00Z', 'x-2')];
    const decisions = applyRetention(snaps, { daily: 1 }, now);
    expect(decisions.map((d) => [d.id, d.keep])).toEqual([
      ['x-2', true],
      ['x-1', false],
    ]);
  });

  it('hourly buckets are UTC hours', () => {
    const snaps = [at('2026-11-26T10:15:00Z', 'a'), at('2026-11-26T10:45:00Z', 'b'), at('2026-11-26T11:05:00Z', 'c')];
    const decisions = applyRetention(snaps, { hourly: 5 }, now);
    expect(decisions.map((d) => [d.id, d.reasons])).toEqual([
      ['c', ['newest', 'hourly 2026-11-26T11']],
      ['b', ['hourly 2026-11-26T10']],
      ['a', []],
    ]);
  });

  describe('suspects (latest verification failed)', () => {
    const snaps = [
      at('2026-11-26T11:30:00Z', 'bad-3', true),
      at('2026-11-26T02:00:00Z', 'bad-2', true),
      at('2026-11-25T02:00:00Z', 'good-4'),
      at('2026-11-24T02:00:00Z', 'bad-1', true),
      at('2026-11-23T02:00:00Z', 'good-2', false),
      at('2026-11-22T02:00:00Z', 'good-1'),
    ];

    it('are kept while the plain policy keeps them, fill no bucket, and good ones are kept in their place', () => {
      // Plain daily 3: bad-3 (11-26), good-4 (11-25), bad-1 (11-24). Without the suspects:
      // good-4, good-2, good-1. Only bad-2 is removed: the plain policy removes it too.
      const decisions = applyRetention(snaps, { daily: 3 }, now);
      expect(decisions.map((d) => [d.id, d.keep, d.suspect ?? false])).toEqual([
        ['bad-3', true, true],
        ['bad-2', false, true],
        ['good-4', true, false],
        ['bad-1', true, true],
        ['good-2', true, false],
        ['good-1', true, false],
      ]);
      expect(reasonsOf(decisions, 'bad-3')).toEqual(['newest', 'daily 2026-11-26']);
      expect(reasonsOf(decisions, 'good-4')).toEqual(['newest', 'daily 2026-11-25']);
      expect(reasonsOf(decisions, 'good-1')).toEqual(['daily 2026-11-22']);
    });

    it('do not count toward last, and are not removed for it', () => {
      expect(keptIds(applyRetention(snaps, { last: 2 }, now))).toEqual(['bad-3', 'bad-2', 'good-4', 'good-2']);
    });

    it('leave the newest good one kept whatever the policy', () => {
      // bad-3 is within the hour; good-4 is 34 hours old but the newest good snapshot.
      const decisions = applyRetention(snaps, { daily: 0, last: 0, within: '1h' }, now);
      expect(decisions.filter((d) => d.keep)).toEqual([
        { id: 'bad-3', time: new Date('2026-11-26T11:30:00Z'), keep: true, reasons: ['newest', 'within 1h'], suspect: true },
        { id: 'good-4', time: new Date('2026-11-25T02:00:00Z'), keep: true, reasons: ['newest'] },
      ]);
    });

    it('all suspect (one verify with a mistyped passphrase): nothing the policy keeps is removed', () => {
      const six = history.slice(0, 6).map((s) => ({ ...s, suspect: true }));
      expect(applyRetention(six, { last: 100 }, now).every((d) => d.keep && d.suspect)).toBe(true);
      expect(keptIds(applyRetention(six, { last: 2 }, now))).toEqual(six.slice(0, 2).map((s) => s.id));
    });

    it('over random histories, policies and suspects: removes at most what the plain policy removes', () => {
      // A small seeded generator: the same cases on every run.
      let seed = 0x5eed;
      const random = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (let round = 0; round < 400; round++) {
        const count = 1 + random(40);
        const snapshots: RetentionCandidate[] = Array.from({ length: count }, (_, i) => ({
          id: `s${String(i).padStart(3, '0')}`,
          time: new Date(now.getTime() - random(90 * 24) * 3_600_000 + (random(20) === 0 ? 3_600_000 : 0)),
          suspect: random(3) === 0,
        }));
        const policy: RetentionPolicy = {};
        for (const kind of ['last', 'hourly', 'daily', 'weekly', 'monthly'] as const) if (random(2)) policy[kind] = random(6);
        if (random(4) === 0) policy.within = `${1 + random(20)}d`;
        if (!Object.values(policy).some((v) => typeof v === 'string' || (v ?? 0) > 0)) policy.last = 1;

        const decisions = applyRetention(snapshots, policy, now);
        const plain = applyRetention(snapshots.map(({ id, time }) => ({ id, time })), policy, now);
        const withoutSuspects = applyRetention(snapshots.filter((s) => !s.suspect), policy, now);
        const plainKept = new Set(keptIds(plain));
        const kept = new Set(keptIds(decisions));
        const context = JSON.stringify({ round, policy });
        for (const s of snapshots) {
          // Never removed unless the plain policy removes it; a suspect is kept exactly while the plain policy keeps it.
          if (plainKept.has(s.id)) expect(kept.has(s.id), context).toBe(true);
          if (s.suspect) expect(kept.has(s.id), context).toBe(plainKept.has(s.id));
        }
        // Every good snapshot the policy keeps among the good ones alone is kept: suspects took no slot.
        for (const id of keptIds(withoutSuspects)) expect(kept.has(id), context).toBe(true);
      }
    });
  });

  it('keeps a snapshot within the 5 minute clock skew as a normal one', () => {
    const snaps = [at('2026-11-26T12:04:00Z', 'skewed'), at('2026-11-26T12:06:00Z', 'ahead')];
    const decisions = applyRetention(snaps, { daily: 1 }, now);
    expect(decisions.map((d) => [d.id, d.reasons])).toEqual([
      ['ahead', ['future']],
      ['skewed', ['newest', 'daily 2026-11-26']],
    ]);
  });

  it.each<[string, RetentionPolicy]>([
    ['an empty policy', {}],
    ['an all-zero policy', { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 }],
    ['a zero duration', { within: '0d' }],
  ])('refuses %s with E_RETENTION', (_, policy) => {
    let error: unknown;
    try {
      applyRetention(history, policy, now);
    } catch (err) {
      error = err;
    }
    expect(isBackupError(error) && error.code).toBe('E_RETENTION');
    expect((error as Error).message).toBe(
      'retention policy keeps no snapshots: set at least one of last, hourly, daily, weekly, monthly, yearly above 0, or within to a duration above 0 (e.g. { daily: 7 })',
    );
  });

  it('refuses an invalid policy with E_RETENTION', () => {
    expect(() => applyRetention(history, { within: '7x' }, now)).toThrow(expect.objectContaining({ code: 'E_RETENTION' }));
  });

  it.each([
    ['2026-12-31T12:00:00Z', '2026-W53'], // a Thursday: 2026 has 53 ISO weeks
    ['2027-01-01T12:00:00Z', '2026-W53'], // a Friday, still in the last week of 2026
    ['2027-01-03T23:59:59Z', '2026-W53'], // the Sunday that ends it
    ['2027-01-04T00:00:00Z', '2027-W01'],
    ['2024-12-30T00:00:00Z', '2025-W01'], // a Monday whose Thursday is 2025-01-02
    ['2021-01-03T12:00:00Z', '2020-W53'],
  ])('puts %s in ISO week %s', (iso, week) => {
    const time = new Date(iso);
    const [decision] = applyRetention([{ id: 'x', time }], { weekly: 1 }, time);
    expect(decision!.reasons).toEqual(['newest', `weekly ${week}`]);
  });
});

describe('parseDuration', () => {
  const h = 3_600_000;
  it.each([
    ['7d', { years: 0, months: 0, ms: 7 * 24 * h }],
    ['36h', { years: 0, months: 0, ms: 36 * h }],
    ['2w', { years: 0, months: 0, ms: 14 * 24 * h }],
    ['1y6mo', { years: 1, months: 6, ms: 0 }],
    ['1y2mo3d4h', { years: 1, months: 2, ms: (3 * 24 + 4) * h }],
    ['90min', { years: 0, months: 0, ms: 1.5 * h }],
    ['1h 30min', { years: 0, months: 0, ms: 1.5 * h }],
  ])('parses %s', (text, expected) => {
    expect(parseDuration(text)).toEqual(expected);
  });

  it.each(['', '7', '7x', '-1d', 'd', '1.5mo', '6m', '1y6m', '7D'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('retentionPolicySchema', () => {
  it('accepts the default and a full policy', () => {
    expect(retentionPolicySchema.parse(DEFAULT_RETENTION)).toEqual({ daily: 7, weekly: 4, monthly: 12 });
    expect(retentionPolicySchema.safeParse({ last: 1, hourly: 24, yearly: 5, within: '1y6mo' }).success).toBe(true);
  });

  it('rejects an unknown key', () => {
    expect(retentionPolicySchema.safeParse({ daily: 7, keepDaily: 3 }).success).toBe(false);
  });

  it('rejects a negative or fractional count', () => {
    expect(retentionPolicySchema.safeParse({ daily: -1 }).success).toBe(false);
    expect(retentionPolicySchema.safeParse({ weekly: 1.5 }).success).toBe(false);
  });

  it.each<[string, RetentionPolicy]>([
    ['last: 0', { last: 0 }],
    ['every count 0', { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 }],
    ['within: 0d', { within: '0d' }],
    ['an empty policy', {}],
  ])('rejects a policy that keeps nothing (%s), at the policy itself', (_, policy) => {
    const result = retentionPolicySchema.safeParse(policy);
    expect(result.success).toBe(false);
    expect(result.error?.issues).toEqual([expect.objectContaining({ path: [], message: expect.stringMatching(/^keeps no snapshots: /) })]);
  });

  it('reports a malformed duration once, not also as keeping nothing', () => {
    expect(retentionPolicySchema.safeParse({ within: '0x' }).error?.issues).toHaveLength(1);
  });

  it('rejects a malformed duration with a clear message', () => {
    const result = retentionPolicySchema.safeParse({ within: '7 days' });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['within']);
    expect(result.error?.issues[0]?.message).toContain('expected a duration like "7d"');
  });
});

describe('describePolicy', () => {
  it('lists the rules in a fixed order', () => {
    expect(describePolicy({ weekly: 4, last: 3, daily: 7 })).toBe('last 3, daily 7, weekly 4');
    expect(describePolicy({ ...DEFAULT_RETENTION, hourly: 0, within: '7d' })).toBe(
      'daily 7, weekly 4, monthly 12, within 7d',
    );
  });
});

describe('partial snapshots (some sources failed)', () => {
  const at = (day: number) => new Date(Date.UTC(2026, 10, day, 2));
  const complete: RetentionCandidate = { id: '20261124T020000Z-daily-c001', time: at(24) };
  const partial1: RetentionCandidate = { id: '20261125T020000Z-daily-p001', time: at(25), partial: true };
  const partial2: RetentionCandidate = { id: '20261126T020000Z-daily-p002', time: at(26), partial: true };

  it('fill no bucket: the last complete snapshot is kept in their place, for the sources they lack', () => {
    const decisions = applyRetention([complete, partial1, partial2], { daily: 1 }, now);
    expect(keptIds(decisions)).toEqual([partial2.id, complete.id]);
    expect(decisions.find((d) => d.id === partial1.id)).toMatchObject({ keep: false, partial: true });
  });

  it('are kept only while the plain policy keeps them, and never cost a complete one its place', () => {
    const decisions = applyRetention([complete, partial1, partial2], { last: 2 }, now);
    // Plain: the two newest (both partial); adjusted: the complete one. Nothing beyond the plain walk's removals.
    expect(keptIds(decisions)).toEqual([partial2.id, partial1.id, complete.id]);
    expect(keptIds(applyRetention([{ ...complete, time: at(23) }, { ...partial1, partial: false }, partial2], { last: 1 }, now))).toEqual([partial2.id, partial1.id]);
  });
});

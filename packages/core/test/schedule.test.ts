import { describe, expect, it } from 'vitest';
import { cronToOnCalendar, fireTimesBetween, nextFireTime, parseCron } from '../src/schedule.js';

describe('cron schedules', () => {
  it('turn into systemd calendar expressions', () => {
    expect(cronToOnCalendar('0 2 * * *')).toBe('*-*-* 02:00:00');
    expect(cronToOnCalendar('0 3 * * 0')).toBe('Sun *-*-* 03:00:00');
    expect(cronToOnCalendar('30 4 1 * *')).toBe('*-*-1 04:30:00');
    expect(cronToOnCalendar('*/15 * * * *')).toBe('*-*-* *:00/15:00');
    expect(cronToOnCalendar('0 1 * * 1-5')).toBe('Mon..Fri *-*-* 01:00:00');
    expect(cronToOnCalendar('0 6,18 * jan,jul *')).toBe('*-1,7-* 06,18:00:00');
    expect(cronToOnCalendar('@weekly')).toBe('Sun *-*-* 00:00:00');
    expect(cronToOnCalendar('0 0 * * 7')).toBe('Sun *-*-* 00:00:00');
  });

  it('are refused with a reason when they are wrong or ambiguous', () => {
    expect(() => parseCron('0 2 * *')).toThrow('expected 5 fields');
    expect(() => parseCron('61 2 * * *')).toThrow('minute: "61" is not in 0-59');
    expect(() => parseCron('0 2 1 * 1')).toThrow('ambiguous');
    expect(() => parseCron('0 5-1 * * *')).toThrow('runs backwards');
    expect(() => parseCron('0 1-10/2 * * *')).toThrow('not supported');
  });
});

describe('fire times', () => {
  const utc = (s: string) => new Date(`${s}Z`);
  const next = (cron: string, after: string) => nextFireTime(cron, utc(after), 'utc').toISOString();

  it('come strictly after the given time, on the minute', () => {
    expect(next('0 2 * * *', '2026-11-26T01:59:59')).toBe('2026-11-26T02:00:00.000Z');
    expect(next('0 2 * * *', '2026-11-26T02:00:00')).toBe('2026-11-27T02:00:00.000Z');
    expect(next('0 3 * * 0', '2026-11-26T12:00:00')).toBe('2026-11-29T03:00:00.000Z');
    expect(next('0 4 1 * *', '2026-11-26T12:00:00')).toBe('2026-12-01T04:00:00.000Z');
    expect(next('*/15 * * * *', '2026-11-26T12:07:30')).toBe('2026-11-26T12:15:00.000Z');
    expect(next('5/20 * * * *', '2026-11-26T12:46:00')).toBe('2026-11-26T13:05:00.000Z');
    expect(next('0 1 * * 1-5', '2026-11-27T02:00:00')).toBe('2026-11-30T01:00:00.000Z');
    expect(next('0 0 * * 7', '2026-11-26T00:00:00')).toBe('2026-11-29T00:00:00.000Z');
    expect(next('0 6,18 * jan,jul *', '2026-11-26T00:00:00')).toBe('2027-01-01T06:00:00.000Z');
    expect(next('0 0 29 2 *', '2026-11-26T00:00:00')).toBe('2028-02-29T00:00:00.000Z');
    expect(next('@monthly', '2026-12-31T23:59:00')).toBe('2027-01-01T00:00:00.000Z');
  });

  it('list every fire time in a window', () => {
    expect(fireTimesBetween('0 2 * * *', utc('2026-11-01T00:00:00'), utc('2026-11-03T02:00:00'), 'utc').map((d) => d.toISOString())).toEqual([
      '2026-11-01T02:00:00.000Z',
      '2026-11-02T02:00:00.000Z',
      '2026-11-03T02:00:00.000Z',
    ]);
  });

  it('follow the local zone through daylight saving changes: a skipped time does not fire, a repeated one fires once', () => {
    const saved = process.env.TZ;
    process.env.TZ = 'Europe/Berlin';
    try {
      // 29 March 2026: 02:00 becomes 03:00; 25 October 2026: 03:00 becomes 02:00.
      const spring = fireTimesBetween('30 2 * * *', new Date('2026-03-27T12:00:00Z'), new Date('2026-03-31T12:00:00Z')).map((d) => d.toISOString());
      expect(spring).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-30T00:30:00.000Z', '2026-03-31T00:30:00.000Z']);
      const autumn = fireTimesBetween('30 2 * * *', new Date('2026-10-24T12:00:00Z'), new Date('2026-10-26T12:00:00Z')).map((d) => d.toISOString());
      expect(autumn).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
      expect(nextFireTime('0 2 * * *', new Date('2026-11-26T12:00:00Z')).toISOString()).toBe('2026-11-27T01:00:00.000Z');
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('a day that never comes is refused when the schedule is read', () => {
    expect(() => parseCron('0 0 30 2 *')).toThrow('day 30 of month 2 never comes');
    expect(() => parseCron('0 0 31 apr,jun *')).toThrow('never comes');
    expect(() => parseCron('0 0 31 * *')).not.toThrow();
  });
});

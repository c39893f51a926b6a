import { describe, expect, it } from 'vitest';
import { cronToOnCalendar, parseCron } from '../src/schedule.js';

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

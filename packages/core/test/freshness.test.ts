import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { freshnessChecks, profileMaxAge, scheduleInterval, tightestMaxAge, watchedProfiles } from '../src/freshness.js';
import { SecretRegistry } from '../src/secrets.js';

const H = 3600_000;
const D = 24 * H;

describe('a schedule interval (the longest gap between two fire times)', () => {
  it('is a day for a daily, a week for a weekly, 31 days for a monthly, 3 days for weekdays', () => {
    expect(scheduleInterval('0 2 * * *')).toBe(D);
    expect(scheduleInterval('0 3 * * 0')).toBe(7 * D);
    expect(scheduleInterval('0 4 1 * *')).toBe(31 * D);
    expect(scheduleInterval('0 1 * * 1-5')).toBe(3 * D);
    expect(scheduleInterval('*/15 * * * *')).toBe(15 * 60_000);
    expect(scheduleInterval('0 6,18 * * *')).toBe(12 * H);
    expect(scheduleInterval('@yearly')).toBe(366 * D);
  });
});

describe('freshness per profile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-freshness-'));
    await fsp.writeFile(path.join(dir, 'probe.mjs'), `export default function () { return { name: 'probe', apply() {} }; }\n`);
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const load = async (yaml: string) => {
    await fsp.writeFile(path.join(dir, '.sutazai-backuprc'), `backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs }\n${yaml}`);
    return loadConfig({ cwd: dir, env: {}, secrets: new SecretRegistry() });
  };

  it('defaults to twice the schedule, takes maxAge per profile, and falls back to checks.maxAge', async () => {
    const config = await load(`profiles:
  daily: { schedule: "0 2 * * *" }
  weekly: { schedule: "0 3 * * 0" }
  monthly: { schedule: "0 4 1 * *", maxAge: 40d }
  adhoc: {}
checks: { maxAge: 30h }
`);
    const ages = Object.fromEntries(Object.values(config.profiles).map((p) => [p.name, profileMaxAge(p, config.checks)]));
    expect(ages).toEqual({ daily: 2 * D, weekly: 14 * D, monthly: 40 * D, adhoc: 30 * H });
    // Beside scheduled profiles, one without schedule or maxAge is run by hand: not watched.
    expect(watchedProfiles(config).map((p) => p.name)).toEqual(['daily', 'weekly', 'monthly']);
    expect(tightestMaxAge(config)).toBe(2 * D);

    const now = new Date('2026-03-16T03:00:00Z');
    const checks = freshnessChecks(config, ['20260301T030000Z-weekly-0001', '20260315T020000Z-daily-0002', '20260316T020000Z-daily-0003'], [], now);
    expect(checks.map((c) => [c.profile, c.ok])).toEqual([
      ['daily', true],
      ['weekly', false],
      ['monthly', true],
    ]);
    expect(checks[0]!.detail).toBe('latest snapshot 20260316T020000Z-daily-0003 of profile daily is 1h old (max 2d)');
    expect(checks[1]!.detail).toBe('latest snapshot 20260301T030000Z-weekly-0001 of profile weekly is 15d old (max 14d)');
    // No monthly yet, but backups began only 15 days ago (the oldest snapshot; the history may say earlier).
    expect(checks[2]!.detail).toBe('no snapshot of profile monthly yet, backups began 15d ago (max age 40d)');
    const history = [{ kind: 'run' as const, status: 'success' as const, startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:01:00Z' }];
    expect(freshnessChecks(config, ['20260316T020000Z-daily-0003'], history, now).map((c) => c.ok)).toEqual([true, false, false]);
    expect(freshnessChecks(config, [], [], now).map((c) => c.detail)).toEqual([
      'no snapshot of profile daily yet (max age 2d)',
      'no snapshot of profile weekly yet (max age 14d)',
      'no snapshot of profile monthly yet (max age 40d)',
    ]);
  });

  it('without schedules, every profile is held to checks.maxAge', async () => {
    const config = await load(`profiles:
  a: {}
  b: {}
`);
    const checks = freshnessChecks(config, ['20260316T000000Z-a-0001'], [], new Date('2026-03-17T03:00:00Z'));
    expect(checks.map((c) => [c.profile, c.ok, c.detail])).toEqual([
      ['a', false, 'latest snapshot 20260316T000000Z-a-0001 of profile a is 27h old (max 26h)'],
      ['b', false, 'no snapshot of profile b yet, backups began 27h ago (max age 26h)'],
    ]);
  });

  it('refuses a bad maxAge or severity, naming the key', async () => {
    const err = await load(`profiles:\n  daily: { maxAge: 2mo }\nchecks: { threeTwoOne: loud, offsiteLag: { severity: maybe } }\n`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).issues.map((i) => i.path);
    expect(issues).toEqual(expect.arrayContaining(['profiles.daily.maxAge', 'checks.threeTwoOne', 'checks.offsiteLag.severity']));
  });
});

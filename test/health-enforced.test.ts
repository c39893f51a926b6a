/**
 * Health enforced (issue 16): freshness per profile, 3-2-1, the offsite copy's lag and a restore
 * test never run, as `status` conditions with a severity, through the built CLI. Days pass with
 * SUTAZAI_BACKUP_NOW; alerts go to a real HTTP receiver on loopback.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeRc, type CliResult } from './helpers/cli.js';
import { expectSchema } from './helpers/json-schemas.js';
import { signedWebhook, type Receiver, type WebhookDelivery } from './helpers/notify-receivers.js';
import { startHttpReceiver, type HttpReceiver } from './helpers/servers.js';

/** A Sunday, 03:00 UTC: when the weekly profile runs. */
const T0 = Date.parse('2026-03-01T03:00:00Z');
const DAY = 24;
const at = (hours: number) => new Date(T0 + hours * 3600_000).toISOString();

let http: HttpReceiver;
let hook: Receiver<WebhookDelivery>;
const dirs: string[] = [];

beforeAll(async () => {
  hook = signedWebhook('/health', undefined);
  http = await startHttpReceiver(hook.handler);
});
afterAll(async () => {
  await http?.stop();
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
});

/** A folder with data, and a `cli(args, hours)` that runs the tool there at T0 + hours. */
async function setup(rc: (url: string) => string): Promise<{ dir: string; cli: (args: string[], hours: number) => Promise<CliResult>; write: (text: string) => Promise<void> }> {
  const dir = await tempDir();
  dirs.push(dir);
  await fsp.mkdir(path.join(dir, 'data'));
  await fsp.writeFile(path.join(dir, 'data', 'a.txt'), 'some data\n');
  const write = (text: string) => writeRc(dir, text);
  await write(rc(`${http.url}/health`));
  return { dir, write, cli: (args, hours) => runCli(args, { cwd: dir, env: { SUTAZAI_BACKUP_NOW: at(hours), TZ: 'UTC' } }) };
}

/** `begin freshness:weekly failure`: what the receiver accepted from `host`. */
const alerts = (host: string) =>
  hook.accepted
    .filter((d) => d.body.kind === 'health' && d.body.host === host)
    .map((d) => `${d.body.condition.state} ${d.body.condition.name}${d.body.condition.profile ? `:${d.body.condition.profile}` : ''} ${d.body.event}`);

const check = (status: { checks: { name: string; profile?: string }[] }, name: string, profile?: string) =>
  status.checks.find((c) => c.name === name && (profile === undefined || c.profile === profile));

describe('freshness per profile', () => {
  it('a weekly older than its maxAge (twice its schedule: 14 days) fails status and alerts, while the daily is fresh', async () => {
    const { cli } = await setup(
      (url) => `backupRoot: ./backups
host: fresh-host
sources:
  docs: { use: files, paths: [./data] }
profiles:
  daily: { schedule: "0 2 * * *", sources: "*" }
  weekly: { schedule: "0 3 * * 0", sources: "*" }
notify:
  ops: { use: webhook, url: "${url}" }
checks: { threeTwoOne: off }
`,
    );
    expect((await cli(['run', '--profile', 'weekly'], 0)).code).toBe(0);
    // Day 13: both fresh (the weekly is 13 days old, max 14d).
    expect((await cli(['run', '--profile', 'daily'], 13 * DAY - 1)).code).toBe(0);
    const before = await cli(['status', '--notify', '--json'], 13 * DAY);
    expect(before.code, before.stderr).toBe(0);
    expect(check(before.json(), 'freshness', 'weekly')).toMatchObject({ ok: true });
    expect(alerts('fresh-host')).toEqual([]);

    // Day 15: the daily ran an hour ago, the weekly's newest is 15 days old.
    expect((await cli(['run', '--profile', 'daily'], 15 * DAY - 1)).code).toBe(0);
    const late = await cli(['status', '--notify', '--json'], 15 * DAY);
    expect(late.code).toBe(1);
    const doc = late.json();
    expectSchema('status', doc);
    expect(doc.healthy).toBe(false);
    expect(check(doc, 'freshness', 'daily')).toMatchObject({ ok: true, detail: expect.stringMatching(/of profile daily is 1(\.0)?h old \(max 2d\)/) });
    expect(check(doc, 'freshness', 'weekly')).toMatchObject({ ok: false, detail: expect.stringMatching(/of profile weekly is 15(\.0)?d old \(max 14(\.0)?d\)/) });
    expect(doc.changes).toEqual([expect.objectContaining({ name: 'freshness', profile: 'weekly', state: 'begin' })]);
    expect(alerts('fresh-host')).toEqual(['begin freshness:weekly failure']);
    expect(hook.accepted.at(-1)!.body.title).toBe('health ALERT: freshness of profile weekly on fresh-host');

    // The text names the profile; a second check alerts no more.
    const text = await cli(['status', '--notify'], 15 * DAY + 1);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/FAIL freshness: latest snapshot \S+-weekly-\S+ of profile weekly is 15(\.0)?d old/);
    expect(text.stdout).toMatch(/ok {3}freshness: latest snapshot \S+-daily-\S+ of profile daily/);
    expect(alerts('fresh-host')).toHaveLength(1);

    // The weekly runs again: one recovery.
    expect((await cli(['run', '--profile', 'weekly'], 15 * DAY + 2)).code).toBe(0);
    expect((await cli(['status', '--notify'], 15 * DAY + 3)).code).toBe(0);
    expect(alerts('fresh-host')).toEqual(['begin freshness:weekly failure', 'clear freshness:weekly recovery']);
  });
});

describe('3-2-1', () => {
  it('non-compliance alerts once as a warning (exit 0, WARN), and clears once when copies go off site', async () => {
    const base = (url: string) => `backupRoot: ./backups
host: rule-host
sources:
  docs: { use: files, paths: [./data] }
notify:
  ops: { use: webhook, url: "${url}" }
`;
    const { cli, write } = await setup(base);
    expect((await cli(['run'], 0)).code).toBe(0);
    const first = await cli(['status', '--notify'], 1);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^healthy: /);
    expect(first.stdout).toMatch(/WARN 3-2-1: 1 copy, 1 medium, none off site: not compliant \(needs 3 copies, 2 media, one copy off site\)/);
    const second = await cli(['status', '--notify', '--json'], 2);
    expect(second.code).toBe(0);
    expect(check(second.json(), '3-2-1')).toMatchObject({ ok: true, warning: true });
    expect(alerts('rule-host')).toEqual(['begin 3-2-1 warning']);
    expect(hook.accepted.at(-1)!.body.title).toBe('health WARNING: 3-2-1 on rule-host');

    // A drive and an off-site copy, replicated by the next run: compliant, one recovery.
    await write(
      `${base(`${http.url}/health`)}destinations:
  drive: { use: local, path: ./drive, medium: external-disk }
  vault: { use: local, path: ./vault, medium: network-share, offsite: true }
`,
    );
    expect((await cli(['run'], 3)).code).toBe(0);
    const fixed = await cli(['status', '--notify', '--json'], 4);
    expect(fixed.code).toBe(0);
    const doc = fixed.json();
    expectSchema('status', doc);
    expect(doc.strategy).toEqual({ copies: 3, media: 3, offsite: true, compliant: true });
    expect(check(doc, '3-2-1')).toEqual({ name: '3-2-1', ok: true, detail: '3 copies, 3 media, one off site (compliant)' });
    expect(check(doc, 'offsite-lag')).toMatchObject({ ok: true });
    await cli(['status', '--notify'], 5);
    expect(alerts('rule-host')).toEqual(['begin 3-2-1 warning', 'clear 3-2-1 recovery']);
  });

  it('severity critical makes status exit 1; off drops the check', async () => {
    const rc = (severity: string) => `backupRoot: ./backups
host: critical-host
sources:
  docs: { use: files, paths: [./data] }
checks: { threeTwoOne: ${severity} }
`;
    const { cli, write } = await setup(() => rc('critical'));
    expect((await cli(['run'], 0)).code).toBe(0);
    const critical = await cli(['status'], 1);
    expect(critical.code).toBe(1);
    expect(critical.stdout).toMatch(/^UNHEALTHY: /);
    expect(critical.stdout).toMatch(/FAIL 3-2-1: 1 copy, 1 medium, none off site: not compliant/);
    await write(rc('off'));
    const off = await cli(['status', '--json'], 1);
    expect(off.code).toBe(0);
    expect(check(off.json(), '3-2-1')).toBeUndefined();
    await write(rc('fatal'));
    const bad = await cli(['status'], 1);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/checks\.threeTwoOne: expected one of warning, critical, off/);
  });
});

describe('offsite lag and a restore test never run', () => {
  it('an off-site copy older than offsiteLag.maxAge is a condition; so is no restore test while restore tests are configured', async () => {
    const rc = (vault: string, extra = '') => `backupRoot: ./backups
host: lag-host
sources:
  docs: { use: files, paths: [./data] }
destinations:
  vault: { use: local, path: ./vault, offsite: true${vault} }
checks: { threeTwoOne: off, offsiteLag: { maxAge: 2d${extra} }, restoreTest: { schedule: "0 5 * * 0" } }
`;
    const { cli, write } = await setup(() => rc(''));
    expect((await cli(['run'], 0)).code).toBe(0);
    const fresh = (await cli(['status', '--json'], 1)).json();
    expect(check(fresh, 'offsite-lag')).toMatchObject({ ok: true, detail: expect.stringMatching(/^vault: newest copy \S+ is 1(\.0)?h old \(max 2d\)$/) });
    expect(check(fresh, 'restore-test')).toMatchObject({ ok: true, warning: true, detail: expect.stringMatching(/no restore test has run yet/) });

    // The vault is unreachable for three days (requireMount on a plain folder): local runs go on.
    await write(rc(', requireMount: true'));
    expect((await cli(['run'], 3 * DAY)).code).toBe(1);
    const lagging = await cli(['status', '--json'], 3 * DAY + 1);
    expect(lagging.code).toBe(1); // the replication failure itself is a failure
    expect(check(lagging.json(), 'offsite-lag')).toMatchObject({ ok: true, warning: true, detail: expect.stringMatching(/vault: newest copy \S+ is 3(\.0)?d old/) });
    await write(rc(', requireMount: true', ', severity: critical'));
    expect(check((await cli(['status', '--json'], 3 * DAY + 1)).json(), 'offsite-lag')).toMatchObject({ ok: false });

    // A passing restore test clears its condition.
    await write(rc(''));
    expect((await cli(['run'], 3 * DAY + 2)).code).toBe(0);
    expect((await cli(['restore-test'], 3 * DAY + 3)).code).toBe(0);
    const good = await cli(['status', '--json'], 3 * DAY + 4);
    expect(good.code).toBe(0);
    expect(check(good.json(), 'offsite-lag')).toMatchObject({ ok: true });
    expect(check(good.json(), 'offsite-lag')).not.toHaveProperty('warning');
    expect(check(good.json(), 'restore-test')).toMatchObject({ ok: true, detail: expect.stringMatching(/passed/) });
  });
});

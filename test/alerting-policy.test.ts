/**
 * Alert policy over scripted sequences of runs and health checks, driving the built CLI.
 * SUTAZAI_BACKUP_NOW (documented in the CLI README) moves the tool's clock so that hours and
 * days pass between commands; the receiver is a real HTTP server on loopback.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeRc, type CliResult } from './helpers/cli.js';
import { signedWebhook, type Receiver, type WebhookDelivery } from './helpers/notify-receivers.js';
import { startHttpReceiver, type HttpReceiver } from './helpers/servers.js';

const T0 = Date.parse('2026-03-02T02:00:00Z');
const at = (hours: number) => new Date(T0 + hours * 3600_000).toISOString();

function logLines(result: CliResult): Record<string, any>[] {
  return result.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

describe('throttle and recovery over a sequence of runs', () => {
  let http: HttpReceiver;
  let throttled: Receiver<WebhookDelivery>;
  let every: Receiver<WebhookDelivery>;
  let dir: string;

  beforeAll(async () => {
    throttled = signedWebhook('/throttled', undefined);
    every = signedWebhook('/every', undefined);
    http = await startHttpReceiver((req) => (req.path === '/every' ? every.handler(req) : throttled.handler(req)));
    dir = await tempDir();
    await writeRc(
      dir,
      `backupRoot: ./backups
host: policy-host
sources:
  docs: { use: files, paths: [./data] }
notify:
  pager: { use: webhook, url: "${http.url}/throttled", throttle: 6h }
  audit: { use: webhook, url: "${http.url}/every", on: [failure, warning, success, recovery] }
`,
    );
  });

  afterAll(async () => {
    await http?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  const run = async (hours: number, sourceOk: boolean) => {
    if (sourceOk) {
      await fsp.mkdir(path.join(dir, 'data'), { recursive: true });
      await fsp.writeFile(path.join(dir, 'data', 'a.txt'), `at ${hours}h\n`);
    } else {
      await fsp.rm(path.join(dir, 'data'), { recursive: true, force: true });
    }
    const result = await runCli(['run', '--json'], { cwd: dir, env: { SUTAZAI_BACKUP_NOW: at(hours) } });
    expect(result.code, result.stderr).toBe(sourceOk ? 0 : 1);
    return result.json();
  };
  const events = (r: Receiver<WebhookDelivery>) => r.accepted.map((d) => d.body.event as string);

  it('a failure that repeats every run alerts once per throttle window; a recovery is sent once; a new failure alerts at once', async () => {
    const first = await run(0, false);
    expect(first.event).toBe('failure');
    expect(events(throttled)).toEqual(['failure']);

    const second = await run(1, false);
    const pager = second.notifications.find((n: any) => n.channel === 'notify.pager');
    expect(pager).toMatchObject({ status: 'skipped' });
    expect(pager.reason).toMatch(/^throttled/);
    await run(5, false);
    expect(events(throttled)).toEqual(['failure']);

    // The window (6h from the first alert) has passed: the repeating failure alerts again.
    await run(7, false);
    expect(events(throttled)).toEqual(['failure', 'failure']);

    const recovered = await run(8, true);
    expect(recovered.event).toBe('recovery');
    expect(events(throttled)).toEqual(['failure', 'failure', 'recovery']);

    // A plain success is not in the default `on:` list.
    const fine = await run(9, true);
    expect(fine.event).toBe('success');
    expect(fine.notifications.find((n: any) => n.channel === 'notify.pager')).toMatchObject({ status: 'skipped' });
    expect(events(throttled)).toEqual(['failure', 'failure', 'recovery']);

    // A new failure, 2.5h after the last failure alert: a new episode, not throttled.
    await run(9.5, false);
    expect(events(throttled)).toEqual(['failure', 'failure', 'recovery', 'failure']);
    await run(10, false);
    expect(events(throttled)).toEqual(['failure', 'failure', 'recovery', 'failure']);

    // The unthrottled channel that wants everything heard every run.
    expect(events(every)).toEqual(['failure', 'failure', 'failure', 'failure', 'recovery', 'success', 'failure', 'failure']);
  });
});

describe('health conditions alert once when they begin and once when they clear (status --notify)', () => {
  let http: HttpReceiver;
  let hook: Receiver<WebhookDelivery>;
  let dir: string;
  let artifact: string;

  // 3-2-1 (a warning condition of its own, tested in health-conditions.test.ts) is off here.
  const rc = (extra = '', checks = '') =>
    writeRc(
      dir,
      `backupRoot: ./backups
host: health-host
sources:
  docs: { use: files, paths: [./data] }
notify:
  ops: { use: webhook, url: "${http.url}/health" }
checks: { threeTwoOne: off${checks} }
${extra}`,
    );
  const cli = (args: string[], hours: number) => runCli(args, { cwd: dir, env: { SUTAZAI_BACKUP_NOW: at(hours) } });
  const health = () => hook.accepted.filter((d) => d.body.kind === 'health').map((d) => `${d.body.condition.state} ${d.body.condition.name} ${d.body.event}`);
  const check = async (hours: number) => {
    const result = await cli(['status', '--notify', '--json'], hours);
    const lines = logLines(result).filter((l) => l.condition);
    // One structured log line per condition, every time.
    expect(lines.map((l) => l.condition).sort()).toEqual(['freshness', 'replication', 'restore-test', 'storage', 'verification']);
    return { result, status: result.json(), lines };
  };
  const flipByte = async () => {
    const handle = await fsp.open(artifact, 'r+');
    const { size } = await handle.stat();
    const b = Buffer.alloc(1);
    await handle.read(b, 0, 1, Math.floor(size / 2));
    b[0] = b[0]! ^ 0xff;
    await handle.write(b, 0, 1, Math.floor(size / 2));
    await handle.close();
  };

  beforeAll(async () => {
    hook = signedWebhook('/health', undefined);
    http = await startHttpReceiver(hook.handler);
    dir = await tempDir();
    await fsp.mkdir(path.join(dir, 'data'));
    await fsp.writeFile(path.join(dir, 'data', 'a.txt'), 'x'.repeat(50_000));
    await rc();
  });

  afterAll(async () => {
    await http?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('freshness: a missing backup (older than checks.maxAge) begins, repeats silently, and clears after a run', async () => {
    expect((await cli(['run'], 0)).code).toBe(0);
    const ok = await check(1);
    expect(ok.result.code).toBe(0);
    expect(ok.status.healthy).toBe(true);
    expect(ok.status.checks.map((c: any) => c.name)).toEqual(['freshness', 'last-run', 'storage', 'verification', 'replication', 'restore-test', 'authentication']);
    expect(ok.status.strategy).toEqual({ copies: 1, media: 1, offsite: false, compliant: false });
    expect(health()).toEqual([]);

    const late = await check(27);
    expect(late.result.code).toBe(1);
    expect(late.status.checks.find((c: any) => c.name === 'freshness')).toMatchObject({ ok: false });
    expect(late.lines.find((l) => l.condition === 'freshness')).toMatchObject({ state: 'begin', ok: false, level: 'error' });
    expect(health()).toEqual(['begin freshness failure']);
    expect(hook.accepted.at(-1)!.body.condition.detail).toMatch(/is 27(\.0)?h old \(max 26h\)/);

    const still = await check(28);
    expect(still.lines.find((l) => l.condition === 'freshness')).toMatchObject({ state: 'failing' });
    expect(health()).toEqual(['begin freshness failure']);

    expect((await cli(['run'], 28)).code).toBe(0);
    const cleared = await check(28.5);
    expect(cleared.result.code).toBe(0);
    expect(cleared.lines.find((l) => l.condition === 'freshness')).toMatchObject({ state: 'clear', ok: true });
    expect(health()).toEqual(['begin freshness failure', 'clear freshness recovery']);
    await check(29);
    expect(health()).toHaveLength(2);
    const snapshot = (await cli(['list', '--json'], 29)).json().at(-1).id as string;
    artifact = path.join(dir, 'backups', 'snapshots', snapshot, 'docs.tar.zst');
  });

  it('storage: use above checks.maxStorageUsage begins (a warning) and clears', async () => {
    const before = health().length;
    await rc('', ', maxStorageUsage: "0.01%"');
    const full = await check(30);
    expect(full.result.code).toBe(1);
    await check(30.5);
    await rc('', ', maxStorageUsage: "100%"');
    await check(31);
    await check(31.5);
    expect(health().slice(before)).toEqual(['begin storage warning', 'clear storage recovery']);
    await rc();
  });

  it('verification: a failed verify begins and a passing one clears', async () => {
    const before = health().length;
    await flipByte();
    expect((await cli(['verify'], 32)).code).toBe(1);
    const bad = await check(32.5);
    expect(bad.status.checks.find((c: any) => c.name === 'verification').detail).toMatch(/failed verification/);
    await check(33);
    await flipByte();
    expect((await cli(['verify'], 33.5)).code).toBe(0);
    await check(34);
    expect(health().slice(before)).toEqual(['begin verification failure', 'clear verification recovery']);
  });

  it('restore test: a failed restore test begins and a passing one clears', async () => {
    const before = health().length;
    await flipByte();
    expect((await cli(['restore-test'], 35)).code).toBe(1);
    await check(35.5);
    await check(36);
    await flipByte();
    expect((await cli(['restore-test'], 36.5)).code).toBe(0);
    await check(37);
    expect(health().slice(before)).toEqual(['begin restore-test failure', 'clear restore-test recovery']);
  });

  it('replication: a failed copy to a destination begins and the next good run clears', async () => {
    const before = health().length;
    // requireMount on a folder that is not a mount point: the copy is refused.
    await rc(`destinations:\n  drive: { use: local, path: ./drive, requireMount: true }\n`);
    expect((await cli(['run'], 38)).code).toBe(1);
    const bad = await check(38.5);
    expect(bad.status.checks.find((c: any) => c.name === 'replication')).toMatchObject({ ok: false });
    await check(39);
    await rc(`destinations:\n  drive: { use: local, path: ./drive }\n`);
    expect((await cli(['run'], 39.5)).code).toBe(0);
    const good = await check(40);
    expect(good.result.code).toBe(0);
    expect(health().slice(before)).toEqual(['begin replication failure', 'clear replication recovery']);
  });
});

describe('a health alert a channel could not take is sent again at the next check', () => {
  let http: HttpReceiver;
  let hook: Receiver<WebhookDelivery>;
  let down = false;
  let dir: string;

  beforeAll(async () => {
    hook = signedWebhook('/health', undefined);
    http = await startHttpReceiver((req) => (down ? { status: 503, body: { error: 'maintenance' } } : hook.handler(req)));
    dir = await tempDir();
    await fsp.mkdir(path.join(dir, 'data'));
    await fsp.writeFile(path.join(dir, 'data', 'a.txt'), 'x');
    await writeRc(dir, `backupRoot: ./backups\nhost: resend-host\nsources:\n  docs: { use: files, paths: [./data] }\nnotify:\n  ops: { use: webhook, url: "${http.url}/health" }\nchecks: { threeTwoOne: off }\n`);
  });
  afterAll(async () => {
    await http?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('delivers the begin once the receiver is back, and only once', async () => {
    const cli = (args: string[], hours: number) => runCli(args, { cwd: dir, env: { SUTAZAI_BACKUP_NOW: at(hours) } });
    expect((await cli(['run'], 0)).code).toBe(0);
    down = true;
    const missed = (await cli(['status', '--notify', '--json'], 27)).json();
    expect(missed.notifications).toEqual([expect.objectContaining({ channel: 'notify.ops', status: 'failed', attempts: 4 })]);
    expect(hook.accepted).toHaveLength(0);
    down = false;
    const resent = (await cli(['status', '--notify', '--json'], 28)).json();
    expect(resent.changes).toEqual([]);
    expect(resent.notifications).toEqual([expect.objectContaining({ channel: 'notify.ops', status: 'sent' })]);
    expect(hook.accepted.map((d) => `${d.body.condition.state} ${d.body.condition.name}`)).toEqual(['begin freshness']);
    await cli(['status', '--notify'], 29);
    expect(hook.accepted).toHaveLength(1);
  });
});

describe('policy settings are checked when the config loads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });
  afterAll(async () => {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('an unknown event in on: or a bad throttle exits 2 naming the file and the key', async () => {
    const file = await writeRc(
      dir,
      `backupRoot: ./backups
sources:
  docs: { use: files, paths: [./data] }
notify:
  ops: { use: webhook, url: "http://127.0.0.1:1/x", on: [failure, sometimes], throttle: soon }
`,
    );
    const result = await runCli(['config', 'validate'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(file);
    expect(result.stderr).toMatch(/notify\.ops\.on\[1\]: expected one of failure, warning, success, recovery/);
    expect(result.stderr).toMatch(/notify\.ops\.throttle: expected a duration like "26h"/);
  });

  it('schedule adds an hourly status --notify when channels are configured', async () => {
    await writeRc(
      dir,
      `backupRoot: ./backups
sources:
  docs: { use: files, paths: [./data] }
notify:
  ops: { use: webhook, url: "http://127.0.0.1:1/x" }
`,
    );
    const result = await runCli(['schedule'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^17 \* \* \* \* .* status --notify --config .*# check health and alert on changes$/m);
  });
});

/**
 * The daemon as real processes on one repository. Its clock is shifted (SUTAZAI_BACKUP_NOW) to
 * seconds before 02:00 so that real fire times come without real waiting. Every run of the
 * source appends "start"/"end" with the real time to runs.log: two runs at once would show as
 * two starts in a row. (Fire times over a month, queueing and catch-up rules: the scheduler's
 * tests with a simulated clock, packages/core/test/scheduler.test.ts.)
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logMessages, startCli, tempDir, writeRc, type CliResult } from '../helpers/cli.js';
import { signedWebhook, type Receiver, type WebhookDelivery } from '../helpers/notify-receivers.js';
import { freePort, startHttpReceiver, type HttpReceiver } from '../helpers/servers.js';

let work: string;
let rcText: string;
let http: HttpReceiver;
let hook: Receiver<WebhookDelivery>;
const started: { child: import('node:child_process').ChildProcess; result: Promise<CliResult> }[] = [];

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const readText = (file: string) => fsp.readFile(path.join(work, file), 'utf8').catch(() => '');
const runsLog = async () => (await readText('runs.log')).trim().split('\n').filter(Boolean).map((l) => l.split(' ')[0]!);
const history = async () => (await readText('repo/state/history.jsonl')).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const schedule = async () => JSON.parse((await readText('repo/state/schedule.json')) || '{"jobs":{}}').jobs;

/** A daemon whose clock reads `now` at its start. */
function daemon(now: string, args: string[] = [], rc?: string) {
  const d = startCli(['daemon', ...args, ...(rc ? ['--config', rc] : [])], { cwd: work, env: { TZ: 'UTC', SUTAZAI_BACKUP_NOW: now, SUTAZAI_BACKUP_LOG_LEVEL: 'info' }, timeoutMs: 170_000 });
  started.push(d);
  return d;
}

beforeAll(async () => {
  hook = signedWebhook('/hook', undefined);
  http = await startHttpReceiver(hook.handler);
  work = await tempDir();
  rcText = `backupRoot: ./repo
sources:
  slow: { use: command, command: "echo start $(date +%s%N) >> ${work}/runs.log; sleep 3; echo end $(date +%s%N) >> ${work}/runs.log; echo data" }
notify:
  hook: { use: webhook, url: "${http.url}/hook" }
profiles:
  daily: { schedule: "0 2 * * *", sources: [slow] }
  every: { schedule: "* * * * *", sources: [slow] }
`;
  await writeRc(work, rcText);
});

afterAll(async () => {
  for (const d of started) d.child.kill('SIGKILL');
  await Promise.all(started.map((d) => d.result.catch(() => undefined)));
  await http?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

describe('the daemon', () => {
  it('runs what is due at its minute, one at a time; a second daemon on the repository refuses to start; a successor catches up, waits for the dead one\'s run, and serves /healthz', async () => {
    const a = daemon('2026-11-01T01:59:57Z');
    // 02:00: daily and every are due together; daily first (its order in the rc file), every after it.
    await until('the first run to start', async () => (await runsLog()).length >= 1);

    const second = await daemon('2026-11-01T02:00:01Z').result;
    expect(second.code).toBe(75);
    expect(second.stderr).toContain(`another daemon runs for ${path.join(work, 'repo')}`);
    // Another rc file naming the same backupRoot is the same repository.
    const other = await writeRc(work, rcText, 'other.yaml');
    expect((await daemon('2026-11-01T02:00:01Z', [], other).result).code).toBe(75);

    await until('every to start after daily', async () => (await runsLog()).length >= 3);
    const runs = (await history()).filter((r) => r.kind === 'run');
    expect(runs.map((r) => [r.profile, r.status])).toEqual([['daily', 'success']]);
    expect(runs[0].startedAt).toMatch(/^2026-11-01T02:00:0\d/);

    // The daemon dies while every runs; its run goes on, holding the run lock.
    a.child.kill('SIGKILL');
    await a.result;
    const port = await freePort();
    const b = daemon('2026-11-01T02:00:40Z', ['--listen', `127.0.0.1:${port}`]);
    await until('the successor to serve', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status);
    expect((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).checks.map((c: { name: string }) => c.name)).toContain('freshness');
    // every's 02:00 run was cut short with its daemon: the successor catches it up, after the dead one's run.
    await until('the catch-up run to end', async () => (await schedule()).every?.lastCatchUp === true && (await runsLog()).length >= 6);
    expect(await runsLog()).toEqual(['start', 'end', 'start', 'end', 'start', 'end']);
    expect((await history()).filter((r) => r.kind === 'run').map((r) => [r.profile, r.status])).toEqual([
      ['daily', 'success'],
      ['every', 'success'],
      ['every', 'success'],
    ]);

    // A job that cannot start (the rc file broke after the daemon started) is recorded and alerted by the daemon.
    const alerts = hook.accepted.length;
    await fsp.writeFile(path.join(work, '.sutazai-backuprc'), `${rcText}unknownKey: 1\n`);
    await until('the broken run to be alerted', async () => hook.accepted.length > alerts, 90_000);
    expect(hook.accepted.at(-1)!.body).toMatchObject({ event: 'failure', profile: 'every', lines: [expect.stringMatching(/^the run failed at start: run --profile every .*: exit 2: .*unknownKey/)] });
    expect((await history()).at(-1)).toMatchObject({ kind: 'run', status: 'failed', missed: true, profile: 'every', errors: [{ stage: 'start', code: 'E_CONFIG' }] });
    await fsp.writeFile(path.join(work, '.sutazai-backuprc'), rcText);

    b.child.kill('SIGTERM');
    const stopped = await b.result;
    expect(stopped.code, stopped.stderr).toBe(0);
    const log = logMessages(stopped.stderr);
    expect(log).toContain('every: missed its run at 2026-11-01T02:00:00.000Z while the daemon was down: running it now');
    expect(log).toContain('daemon stopped');
  }, 170_000);

  it('SIGTERM during a run stops the run (nothing committed), then the daemon; the stopped slot is caught up at the next start', async () => {
    const before = (await schedule()).every;
    const snapshots = (await fsp.readdir(path.join(work, 'repo', 'snapshots'))).length;
    const runsBefore = (await runsLog()).length;
    // Down since 02:01: every's 02:02 was missed, and is run at start.
    const c = daemon('2026-11-01T02:03:30Z');
    await until('the catch-up run to start', async () => (await runsLog()).length > runsBefore);
    c.child.kill('SIGTERM');
    const stopped = await c.result;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(logMessages(stopped.stderr).split('\n')).toEqual(
      expect.arrayContaining(['received SIGTERM: stopping once the job that runs now has stopped', 'every: stopped: stopped with the daemon', 'daemon stopped']),
    );
    expect((await fsp.readdir(path.join(work, 'repo', 'snapshots'))).length).toBe(snapshots);
    expect((await history()).at(-1)).toMatchObject({ kind: 'run', profile: 'every', status: 'failed', snapshot: null, errors: [expect.objectContaining({ code: 'E_ABORTED' })] });
    expect((await schedule()).every).toEqual(before);
    // Never two runs at once: starts and ends alternate; the stopped run never wrote its end.
    const log = await runsLog();
    expect(log).toEqual(log.map((_, i) => (i % 2 ? 'end' : 'start')));
    expect(log.at(-1)).toBe('start');
  }, 120_000);
});

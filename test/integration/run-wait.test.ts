/**
 * `run --wait`: a scheduled run that finds another run holding the lock waits for it instead of
 * exiting 75 at once; one that finally does not happen is written to the history and alerted.
 * Real processes: a slow run (a command source that sleeps) holds the lock.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { logMessages, runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';
import { signedWebhook, type Receiver, type WebhookDelivery } from '../helpers/notify-receivers.js';
import { startHttpReceiver, type HttpReceiver } from '../helpers/servers.js';

let work: string;
let http: HttpReceiver;
let hook: Receiver<WebhookDelivery>;

beforeAll(async () => {
  hook = signedWebhook('/hook', undefined);
  http = await startHttpReceiver(hook.handler);
  work = await tempDir();
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n' });
  await writeRc(
    work,
    `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
  slow: { use: command, command: "touch ${work}/slow.started; sleep 5; echo slow" }
notify:
  hook: { use: webhook, url: "${http.url}/hook" }
profiles:
  slow:  { sources: [slow] }
  quick: { sources: [configs] }
`,
  );
});

afterAll(async () => {
  await http?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

/** Starts the slow run and resolves once it holds the lock (its source has started). */
async function holdLock() {
  await fsp.rm(path.join(work, 'slow.started'), { force: true });
  const slow = startCli(['run', '--profile', 'slow', '--json'], { cwd: work });
  for (let i = 0; i < 400 && !(await fsp.access(path.join(work, 'slow.started')).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
  return slow;
}

async function history(): Promise<any[]> {
  return (await fsp.readFile(path.join(work, 'repo', 'state', 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
}

describe('run --wait', () => {
  it('without --wait a run refused by the lock exits 75 at once and records nothing', async () => {
    const slow = await holdLock();
    const refused = await runCli(['run', '--profile', 'quick', '--json'], { cwd: work });
    expect(refused.code).toBe(75);
    expect(refused.json().error).toMatchObject({ code: 'E_LOCKED' });
    expect((await slow.result).code).toBe(0);
    expect((await history()).filter((r) => r.profile === 'quick')).toEqual([]);
  });

  it('waits for the run that holds the lock, then runs; its snapshot is dated when it ran', async () => {
    const slow = await holdLock();
    const waited = await runCli(['run', '--profile', 'quick', '--wait', '2min', '--json'], { cwd: work });
    const held = await slow.result;
    expect(held.code).toBe(0);
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stderr).toMatch(/profile quick: waiting up to 2min for the lock: another run holds the lock \(run --profile slow/);
    const report = waited.json();
    expect(report.status).toBe('success');
    expect(Date.parse(report.startedAt)).toBeGreaterThanOrEqual(Date.parse(held.json().finishedAt));
  });

  it('gives up after the wait: exit 75, a missed run in the history, a failure alert; the next run of the profile is a recovery', async () => {
    const alerts = hook.accepted.length;
    const slow = await holdLock();
    const gaveUp = await runCli(['run', '--profile', 'quick', '--wait', '1s', '--json'], { cwd: work });
    expect(gaveUp.code).toBe(75);
    expect(gaveUp.json().error).toMatchObject({ code: 'E_LOCKED', message: expect.stringMatching(/^gave up after waiting 1 s for the lock: another run holds the lock \(run --profile slow/) });
    expect((await history()).filter((r) => r.profile === 'quick').at(-1)).toMatchObject({
      kind: 'run',
      status: 'failed',
      missed: true,
      snapshot: null,
      errors: [{ stage: 'lock', code: 'E_LOCKED', message: expect.stringContaining('gave up after waiting 1 s') }],
    });
    expect(hook.accepted.slice(alerts).map((d) => [d.body.event, d.body.profile, d.body.lines[0]])).toEqual([
      ['failure', 'quick', expect.stringMatching(/^the run failed at lock: gave up after waiting 1 s for the lock/)],
    ]);
    expect((await slow.result).code).toBe(0);
    const next = await runCli(['run', '--profile', 'quick', '--json'], { cwd: work });
    expect(next.json()).toMatchObject({ status: 'success', event: 'recovery' });
    expect(hook.accepted.at(-1)!.body).toMatchObject({ event: 'recovery', profile: 'quick' });
  });

  it('stopped while it waits, it exits 143 and records no missed run', async () => {
    const slow = await holdLock();
    const waiting = startCli(['run', '--profile', 'quick', '--wait', '2min', '--json'], { cwd: work });
    // Stopped once it waits (not while Node still starts: under load that takes seconds).
    await new Promise<void>((resolve) => {
      let seen = '';
      waiting.child.stderr!.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('waiting up to 2min for the lock')) resolve();
      });
    });
    waiting.child.kill('SIGTERM');
    const stopped = await waiting.result;
    expect(stopped.code).toBe(143);
    expect(stopped.json()).toMatchObject({ status: 'failed', snapshot: null, errors: [{ stage: 'lock', code: 'E_ABORTED' }] });
    await slow.result;
    expect((await history()).filter((r) => r.missed && r.errors[0].code === 'E_ABORTED')).toEqual([]);
  });

  it('a --wait that is not a duration is a usage error naming the option', async () => {
    const r = await runCli(['run', '--profile', 'quick', '--wait', 'soon'], { cwd: work });
    expect(r.code).toBe(2);
    expect(logMessages(r.stderr)).toContain('--wait soon: expected a duration like "6h", "90min", "30s" or a number of seconds');
  });
});

import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// The engine-level tests go through the built packages, as a plugin author's tests would.
import { BackupError, defineNotifier, z } from '@sutazai/backup-core';
import { notifyThrough, sampleRunNotification } from '@sutazai/backup-testkit';
import { createHooks, tapOnly, wrapTapErrors, type NotifyContext, type TapOutcome } from '../src/hooks.js';
import { silentLogger } from '../src/log.js';
import {
  decideDelivery,
  describeReportError,
  NotificationStateStore,
  outcomeClass,
  runEvent,
  type ChannelPolicy,
} from '../src/notify.js';

const HOUR = 3600_000;
const now = new Date('2026-11-26T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();
const policy = (on: ChannelPolicy['on'], throttleMs?: number): ChannelPolicy => ({ on, throttleMs });

describe('decideDelivery', () => {
  it("sends only the events in the channel's on: list; a recovery counts as a success", () => {
    const defaults = policy(['failure', 'warning', 'recovery']);
    expect(decideDelivery(defaults, 'failure', undefined, now)).toEqual({ send: true });
    expect(decideDelivery(defaults, 'success', undefined, now)).toMatchObject({ send: false, reason: expect.stringMatching(/does not include success/) });
    expect(decideDelivery(policy(['success']), 'recovery', undefined, now)).toEqual({ send: true });
    expect(decideDelivery(policy(['recovery']), 'success', undefined, now).send).toBe(false);
  });

  it('throttles the same event inside the window only', () => {
    const sixHours = policy(['failure', 'recovery'], 6 * HOUR);
    expect(decideDelivery(sixHours, 'failure', { event: 'failure', sentAt: ago(HOUR) }, now)).toMatchObject({
      send: false,
      reason: 'throttled: the same failure was sent 1h ago (throttle 6h)',
    });
    expect(decideDelivery(sixHours, 'failure', { event: 'failure', sentAt: ago(6 * HOUR - 1000) }, now).send).toBe(false);
    expect(decideDelivery(sixHours, 'failure', { event: 'failure', sentAt: ago(6 * HOUR) }, now).send).toBe(true);
    // Another event is never held back by the last one.
    expect(decideDelivery(sixHours, 'recovery', { event: 'failure', sentAt: ago(60_000) }, now).send).toBe(true);
    // Without a throttle every failure goes out.
    expect(decideDelivery(policy(['failure']), 'failure', { event: 'failure', sentAt: ago(60_000) }, now).send).toBe(true);
  });
});

describe('run outcome', () => {
  it('is failure, recovery (first success after a failure), warning or success', () => {
    expect(runEvent({ status: 'failed', warnings: [] }, 'failure')).toBe('failure');
    expect(runEvent({ status: 'success', warnings: [] }, 'failure')).toBe('recovery');
    expect(runEvent({ status: 'success', warnings: ['x'] }, 'failure')).toBe('recovery');
    expect(runEvent({ status: 'success', warnings: ['x'] }, 'success')).toBe('warning');
    expect(runEvent({ status: 'success', warnings: [] }, 'warning')).toBe('success');
    expect(runEvent({ status: 'success', warnings: [] }, undefined)).toBe('success');
    expect(outcomeClass('recovery', 0)).toBe('success');
    expect(outcomeClass('recovery', 2)).toBe('warning');
  });

  it('names the failed plugin and stage once', () => {
    expect(describeReportError({ stage: 'collect', plugin: 'sources.docs', code: 'E_SOURCE', message: 'sources.docs: path /x does not exist' })).toBe(
      'sources.docs failed at collect: path /x does not exist',
    );
    expect(describeReportError({ stage: 'notify', plugin: 'notify.x', code: 'E_NOTIFY', message: 'notify.x (notify): boom' })).toBe('notify.x failed at notify: boom');
  });
});

describe('the notify hook settles every tap', () => {
  it('runs every tap even when one throws, and hands each failure (with plugin and stage) to settle', async () => {
    const hooks = createHooks();
    wrapTapErrors(hooks);
    const view = tapOnly(hooks);
    const ran: string[] = [];
    view.notify.tapPromise('notify.first', async () => {
      ran.push('first');
      throw new Error('SMTP server down');
    });
    view.notify.tap('notify.second', () => {
      ran.push('second');
      throw new Error('sync failure');
    });
    view.notify.tapPromise('notify.third', async () => {
      ran.push('third');
    });
    view.notify.tapPromise('notify.muted', async () => {
      ran.push('muted');
    });
    const outcomes = new Map<string, TapOutcome>();
    const ctx: NotifyContext = {
      notification: sampleRunNotification('failure'),
      report: undefined,
      logger: silentLogger(),
      admits: (tap) => tap !== 'notify.muted',
      settle: (tap, outcome) => outcomes.set(tap, outcome),
      recordAttempts: () => {},
    };
    await expect(hooks.notify.promise(ctx)).resolves.toBeUndefined();
    expect(ran.sort()).toEqual(['first', 'second', 'third']);
    expect(outcomes.get('notify.first')!.error).toMatchObject({ code: 'E_NOTIFY', plugin: 'notify.first', stage: 'notify' });
    expect(outcomes.get('notify.first')!.error!.message).toMatch(/SMTP server down/);
    expect(outcomes.get('notify.second')!.error!.message).toMatch(/sync failure/);
    expect(outcomes.get('notify.third')!.error).toBeUndefined();
    expect(outcomes.has('notify.muted')).toBe(false);
  });

  it('other hooks still stop at the first failure', async () => {
    const hooks = createHooks();
    wrapTapErrors(hooks);
    const ran: string[] = [];
    tapOnly(hooks).prune.tapPromise('plugins[0]', async () => {
      ran.push('a');
      throw new Error('no');
    });
    tapOnly(hooks).prune.tapPromise('plugins[1]', async () => {
      ran.push('b');
    });
    await expect(hooks.prune.promise({ run: undefined, dryRun: true, logger: silentLogger() })).rejects.toMatchObject({ plugin: 'plugins[0]', stage: 'prune' });
    expect(ran).toEqual(['a']);
  });
});

describe('defineNotifier through the engine', () => {
  const flaky = (failures: number, error: () => Error) => {
    let calls = 0;
    const factory = defineNotifier({
      name: 'flaky',
      options: z.object({}).strict(),
      async send() {
        calls++;
        if (calls <= failures) throw error();
      },
    });
    return { plugin: factory({}), calls: () => calls };
  };

  it('retries a transient failure with backoff and reports the attempts', async () => {
    const channel = flaky(1, () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const [result] = await notifyThrough([{ plugin: channel.plugin }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ channel: 'notify.test', plugin: 'flaky', status: 'sent', attempts: 2 });
    expect(channel.calls()).toBe(2);
  });

  it('does not retry a permanent failure (a 4xx answer), and one failing channel does not stop another', async () => {
    const rejected = flaky(99, () => new BackupError('E_NOTIFY', 'HTTP 401: bad token', { details: { status: 401 } }));
    const healthy = flaky(0, () => new Error('never'));
    const results = await notifyThrough(
      [
        { name: 'bad', plugin: rejected.plugin },
        { name: 'good', plugin: healthy.plugin },
      ],
      sampleRunNotification('failure'),
    );
    expect(results).toEqual([
      expect.objectContaining({ channel: 'notify.bad', status: 'failed', attempts: 1, error: 'HTTP 401: bad token' }),
      expect.objectContaining({ channel: 'notify.good', status: 'sent', attempts: 1 }),
    ]);
    expect(rejected.calls()).toBe(1);
  });

  it('applies on: and throttle from the channel settings, with state kept between calls', async () => {
    const stateRoot = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-notify-'));
    try {
      const channel = flaky(0, () => new Error('never'));
      const channels = [{ plugin: channel.plugin, settings: { on: ['failure'], throttle: 6 * HOUR } }];
      const first = await notifyThrough(channels, sampleRunNotification('failure'), { stateRoot });
      const second = await notifyThrough(channels, sampleRunNotification('failure'), { stateRoot });
      const success = await notifyThrough(channels, sampleRunNotification('success'), { stateRoot });
      expect([first[0]!.status, second[0]!.status, success[0]!.status]).toEqual(['sent', 'skipped', 'skipped']);
      expect(second[0]!.reason).toMatch(/^throttled/);
      expect(channel.calls()).toBe(1);
      const state = JSON.parse(await fsp.readFile(path.join(stateRoot, 'state', 'notifications.json'), 'utf8'));
      expect(state.channels['notify.test']['run:daily']).toMatchObject({ event: 'failure' });
    } finally {
      await fsp.rm(stateRoot, { recursive: true, force: true });
    }
  });
});

describe('NotificationStateStore', () => {
  it('starts over from a damaged file rather than stop alerting', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-state-'));
    try {
      // The state folder of a backupRoot: the tool refuses to write into /tmp's own.
      const store = new NotificationStateStore(path.join(dir, 'state'));
      await fsp.mkdir(path.dirname(store.file), { mode: 0o700 });
      await fsp.writeFile(store.file, '{"runs": {"daily": ');
      expect(await store.read()).toEqual({ runs: {}, conditions: {}, channels: {} });
      await store.update((s) => {
        s.runs.daily = { outcome: 'failure', since: 'a', at: 'b' };
      });
      await store.update((s) => {
        s.conditions.freshness = { ok: false, since: 'c', detail: 'd' };
      });
      expect(await store.read()).toMatchObject({ runs: { daily: { outcome: 'failure' } }, conditions: { freshness: { ok: false } } });
      expect((await fsp.stat(store.file)).mode & 0o777).toBe(0o600);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

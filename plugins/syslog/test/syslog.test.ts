/**
 * The syslog notifier against a real unix datagram socket (every byte of what arrives) and
 * against Debian's rsyslogd (what a syslog daemon parses out of it). journald does not run here
 * (no systemd as PID 1): its native entry is checked as the fields handed to `logger --journald`,
 * and the refusal when its socket is missing against the real file system.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthNotification } from '@sutazai/backup-core';
import { notifyThrough, sampleRunNotification } from '@sutazai/backup-testkit';
import { startDatagramReceiver, startRsyslog, type DatagramReceiver, type Rsyslog } from '../../../test/helpers/syslog-servers.js';
import syslog, { JOURNAL_SOCKET, journalFields, syslogMessage } from '../src/index.js';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-syslog-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const health = healthNotification('test-host', { name: 'freshness', state: 'begin', detail: 'latest snapshot is 3d old (max 26h)', since: '2026-11-26T02:00:00Z' }, 'warning', new Date('2026-11-26T03:00:00Z'));

describe('syslog to a unix datagram socket', () => {
  let receiver: DatagramReceiver;
  beforeAll(async () => {
    receiver = await startDatagramReceiver(path.join(dir, 'dgram.sock'));
  });
  afterAll(async () => {
    await receiver?.stop();
  });

  it('RFC 5424 with the priority of the event: failure err, warning warning, success and recovery info', async () => {
    const plugin = syslog({ target: 'syslog', socket: receiver.socket, facility: 'local3' });
    for (const event of ['failure', 'recovery', 'success'] as const) {
      const [result] = await notifyThrough([{ plugin, settings: { on: ['failure', 'warning', 'success', 'recovery'] } }], sampleRunNotification(event));
      expect(result).toMatchObject({ status: 'sent' });
    }
    await notifyThrough([{ plugin }], health);
    const got = await receiver.waitFor(4);
    // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG, PRI = facility * 8 + severity (local3 = 19).
    const header = /^<(\d+)>1 \S+ \S+ sutazai-backup (\d+) (\w+) - (.*)$/;
    const parsed = got.map((d) => header.exec(d)?.slice(1));
    expect(parsed.map((p) => [p?.[0], p?.[2]])).toEqual([
      [String(19 * 8 + 3), 'failure'],
      [String(19 * 8 + 6), 'recovery'],
      [String(19 * 8 + 6), 'success'],
      [String(19 * 8 + 4), 'warning'],
    ]);
    expect(parsed[0]![1]).toBe(String(process.pid));
    expect(parsed[0]![3]).toBe('backup FAILED: test-host / daily | sources.app-db failed at collect: pg_dump exited with code 1: connection refused');
    expect(parsed[3]![3]).toBe('health WARNING: freshness on test-host | freshness: latest snapshot is 3d old (max 26h)');
  });

  it('RFC 3164 when asked: <PRI>timestamp tag[pid]: message', async () => {
    const before = receiver.datagrams.length;
    await notifyThrough([{ plugin: syslog({ target: 'syslog', socket: receiver.socket, format: 'rfc3164', tag: 'backups' }) }], sampleRunNotification('failure'));
    const [line] = (await receiver.waitFor(before + 1)).slice(before);
    expect(line).toMatch(new RegExp(`^<27>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d \\S+ backups\\[${process.pid}\\]: backup FAILED: test-host / daily \\| `));
  });

  it('a socket that is not there fails the channel, naming it', async () => {
    const missing = path.join(dir, 'nobody-listens.sock');
    const [result] = await notifyThrough([{ plugin: syslog({ target: 'syslog', socket: missing }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', error: expect.stringContaining(`notify.test: syslog socket ${missing} failed: logger exited with code 1`) });
  });
});

describe('syslog to rsyslogd', () => {
  let rsyslog: Rsyslog;
  beforeAll(async () => {
    const home = path.join(dir, 'rsyslog');
    await fsp.mkdir(home);
    rsyslog = await startRsyslog(home);
  });
  afterAll(async () => {
    await rsyslog?.stop();
  });

  it('the daemon files each message under the facility and severity of its event, in both formats', async () => {
    await notifyThrough([{ plugin: syslog({ target: 'syslog', socket: rsyslog.socket }) }], sampleRunNotification('failure'));
    await notifyThrough([{ plugin: syslog({ target: 'syslog', socket: rsyslog.socket, format: 'rfc3164' }) }], health);
    await notifyThrough([{ plugin: syslog({ target: 'syslog', socket: rsyslog.socket }) }], sampleRunNotification('recovery'));
    const entries = await rsyslog.waitFor(3);
    expect(entries.map((e) => [e.facility, e.severity, e.app, e.procid])).toEqual([
      ['daemon', 'err', 'sutazai-backup', String(process.pid)],
      ['daemon', 'warning', 'sutazai-backup', String(process.pid)],
      ['daemon', 'info', 'sutazai-backup', String(process.pid)],
    ]);
    expect(entries[0]!.msgid).toBe('failure');
    expect(entries[0]!.msg).toBe(syslogMessage(sampleRunNotification('failure')));
    expect(entries[1]!.msg).toBe(syslogMessage(health));
  });
});

describe('journald', () => {
  it('the native entry carries MESSAGE, PRIORITY, the identifier and the facts as SUTAZAI_* fields, one line each', () => {
    const fields = journalFields(sampleRunNotification('failure'), { tag: 'sutazai-backup', facility: 'daemon' });
    const lines = fields.trimEnd().split('\n');
    expect(lines.slice(0, 6)).toEqual([
      `MESSAGE=${syslogMessage(sampleRunNotification('failure'))}`,
      'PRIORITY=3',
      'SYSLOG_IDENTIFIER=sutazai-backup',
      'SYSLOG_FACILITY=3',
      'SUTAZAI_EVENT=failure',
      'SUTAZAI_KIND=run',
    ]);
    expect(lines).toContain('SUTAZAI_PROFILE=daily');
    expect(lines.every((l) => /^[A-Z0-9_]+=/.test(l))).toBe(true);
    expect(journalFields(health, { tag: 't', facility: 'daemon' })).toContain('PRIORITY=4\n');
  });

  it('target journald without journald running fails the channel, saying so (libsystemd would drop the entry silently)', async () => {
    const running = await fsp.stat(JOURNAL_SOCKET).then((s) => s.isSocket(), () => false);
    if (running) return; // On a machine with journald, the entry goes through; nothing to refuse.
    const [result] = await notifyThrough([{ plugin: syslog({ target: 'journald' }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', error: expect.stringContaining(`journald is not running here: ${JOURNAL_SOCKET} is not a socket`) });
  });
});

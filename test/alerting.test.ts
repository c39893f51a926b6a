/**
 * Alerting end to end: the built CLI, a real SMTP server (smtp-server) and real HTTP servers on
 * loopback whose handlers check requests as Slack, a signed-webhook receiver and Twilio's API do.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeRc, type CliResult } from './helpers/cli.js';
import { parseMail, signedWebhook, slackWebhook, twilioApi, type Receiver } from './helpers/notify-receivers.js';
import { freePort, startHttpReceiver, startSmtp, type HttpReceiver, type SmtpTestServer } from './helpers/servers.js';

const SMTP_PASSWORD = 'smtp-pw-Qx81vTz';
const WEBHOOK_SECRET = 'hook-secret-Lm47Rw2';
const TWILIO_TOKEN = 'twilio-token-Hy62Ck9d';
const SLACK_TOKEN = 'slackTokenZp93Wq5e';
const BEARER = 'bearer-Vn28Jd4s';
const SECRETS = [SMTP_PASSWORD, WEBHOOK_SECRET, TWILIO_TOKEN, SLACK_TOKEN, BEARER];
const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const SLACK_PATH = `/services/T0001/B0001/${SLACK_TOKEN}`;

/** JSON log lines of a CLI run (stderr is not a TTY, so the logger writes JSON lines). */
function logLines(result: CliResult): Record<string, any>[] {
  return result.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

function expectNoSecret(text: string, where: string): void {
  for (const secret of SECRETS) expect(text.includes(secret), `${where} holds the secret ${secret}`).toBe(false);
}

describe('a failing source alerts every channel once, naming the source and stage', () => {
  let smtp: SmtpTestServer;
  let http: HttpReceiver;
  let slack: Receiver<any>;
  let hook: Receiver<any>;
  let sms: Receiver<any>;
  let dir: string;
  let result: CliResult;

  beforeAll(async () => {
    smtp = await startSmtp({ auth: { user: 'alerts', password: SMTP_PASSWORD }, starttls: true });
    slack = slackWebhook(SLACK_PATH);
    hook = signedWebhook('/hooks/backup', WEBHOOK_SECRET, { Authorization: `Bearer ${BEARER}`, 'X-Team': 'ops' });
    sms = twilioApi(ACCOUNT_SID, TWILIO_TOKEN);
    http = await startHttpReceiver((req) => {
      if (req.path.startsWith('/services/')) return slack.handler(req);
      if (req.path.startsWith('/hooks/')) return hook.handler(req);
      return sms.handler(req);
    });
    dir = await tempDir();
    await fsp.mkdir(path.join(dir, 'data'));
    await fsp.writeFile(path.join(dir, 'data', 'a.txt'), 'kept\n');
    await writeRc(
      dir,
      `backupRoot: ./backups
host: alert-host
sources:
  docs: { use: files, paths: [./data] }
  uploads: { use: files, paths: [./missing-uploads] }
profiles:
  nightly: { sources: "*" }
notify:
  mail:
    use: email
    url: smtp://alerts:${SMTP_PASSWORD}@127.0.0.1:${smtp.port}
    tls: starttls
    rejectUnauthorized: false
    from: backup@example.com
    to: [ops@example.com]
  chat:
    use: slack
    webhook: \${SLACK_WEBHOOK}
  hook:
    use: webhook
    url: ${http.url}/hooks/backup
    secret: ${WEBHOOK_SECRET}
    headers: { Authorization: "Bearer ${BEARER}", X-Team: ops }
  sms:
    use: twilio
    accountSid: ${ACCOUNT_SID}
    authToken: \${TWILIO_AUTH_TOKEN}
    from: "+15005550006"
    to: ["+4915112345678"]
    apiBaseUrl: ${http.url}
`,
    );
    result = await runCli(['run', '--json'], {
      cwd: dir,
      env: { SLACK_WEBHOOK: `${http.url}${SLACK_PATH}`, TWILIO_AUTH_TOKEN: TWILIO_TOKEN },
    });
  });

  afterAll(async () => {
    await smtp?.stop();
    await http?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('fails the run (exit 1) and reports every channel as sent', () => {
    expect(result.code, result.stderr).toBe(1);
    const report = result.json();
    expect(report.status).toBe('failed');
    expect(report.event).toBe('failure');
    expect(report.errors).toEqual([expect.objectContaining({ stage: 'collect', plugin: 'sources.uploads' })]);
    expect(report.notifications.map((n: any) => [n.channel, n.status])).toEqual([
      ['notify.mail', 'sent'],
      ['notify.chat', 'sent'],
      ['notify.hook', 'sent'],
      ['notify.sms', 'sent'],
    ]);
  });

  it('delivers exactly one email, Slack message, webhook POST and SMS', () => {
    expect(smtp.messages).toHaveLength(1);
    expect(slack.accepted).toHaveLength(1);
    expect(hook.accepted).toHaveLength(1);
    expect(sms.accepted).toHaveLength(1);
    expect([...slack.rejected, ...hook.rejected, ...sms.rejected]).toEqual([]);
  });

  it('the email names host, profile and outcome in the subject, and the failed source and stage in both bodies', () => {
    const mail = parseMail(smtp.messages[0]!.raw);
    expect(smtp.messages[0]!.to).toEqual(['ops@example.com']);
    expect(mail.subject).toMatch(/alert-host/);
    expect(mail.subject).toMatch(/nightly/);
    expect(mail.subject).toMatch(/FAILED/);
    const text = mail.parts['text/plain']!;
    const html = mail.parts['text/html']!;
    expect(text).toMatch(/sources\.uploads failed at collect: path .*missing-uploads does not exist/);
    expect(html).toMatch(/sources\.uploads failed at collect/);
    // The summary table.
    expect(html).toMatch(/<th[^>]*>Host<\/th><td[^>]*>alert-host<\/td>/);
    expect(text).toMatch(/^Profile\s+nightly$/m);
  });

  it('the Slack message is Block Kit naming the failed source and stage', () => {
    const message = slack.accepted[0]!;
    expect(message.blocks.map((b: any) => b.type)).toEqual(expect.arrayContaining(['header', 'section', 'context']));
    expect(message.blocks[0].text.text).toMatch(/FAILED: alert-host \/ nightly/);
    expect(message.raw).toMatch(/sources\.uploads failed at collect/);
  });

  it('the webhook POST carries the report, signed and with the custom headers', () => {
    const delivery = hook.accepted[0]!;
    expect(delivery.headers['x-team']).toBe('ops');
    expect(delivery.body.kind).toBe('run');
    expect(delivery.body.event).toBe('failure');
    expect(delivery.body.report.errors[0]).toMatchObject({ plugin: 'sources.uploads', stage: 'collect' });
    expect(delivery.body.lines[0]).toMatch(/^sources\.uploads failed at collect/);
  });

  it('the SMS names the failed source and stage and fits one GSM-7 segment', () => {
    const text = sms.accepted[0]!;
    expect(text.to).toBe('+4915112345678');
    expect(text.from).toBe('+15005550006');
    expect(text.body).toMatch(/FAILED/);
    expect(text.body).toMatch(/sources\.uploads failed at collect/);
    expect(text.segments).toBe(1);
  });

  it('no secret from the rc file appears in any message, the report or the log', async () => {
    expectNoSecret(smtp.messages[0]!.raw, 'the email');
    expectNoSecret(slack.accepted[0]!.raw, 'the Slack message');
    expectNoSecret(hook.accepted[0]!.raw, 'the webhook body');
    expectNoSecret(JSON.stringify(sms.accepted[0]), 'the SMS');
    expectNoSecret(result.stdout, 'run --json');
    expectNoSecret(result.stderr, 'the log');
    const state = path.join(dir, 'backups', 'state');
    for (const f of await fsp.readdir(state)) expectNoSecret(await fsp.readFile(path.join(state, f), 'utf8'), `state/${f}`);
  });

  it('logs one structured line for the run and one per channel', () => {
    const lines = logLines(result);
    const runLines = lines.filter((l) => /^run (success|failed)/.test(l.msg));
    expect(runLines).toHaveLength(1);
    expect(runLines[0]).toMatchObject({ event: 'failure', profile: 'nightly', level: 'error' });
    expect(lines.filter((l) => l.channel && /sent the failure notification/.test(l.msg)).map((l) => l.channel).sort()).toEqual([
      'notify.chat',
      'notify.hook',
      'notify.mail',
      'notify.sms',
    ]);
  });
});

describe('a channel that cannot deliver', () => {
  let http: HttpReceiver;
  let hook: Receiver<any>;
  let dir: string;

  beforeAll(async () => {
    hook = signedWebhook('/hooks/backup', undefined);
    http = await startHttpReceiver(hook.handler);
    // A port nothing listens on: the SMTP server is down.
    const deadPort = await freePort();
    dir = await tempDir();
    await fsp.mkdir(path.join(dir, 'data'));
    await fsp.writeFile(path.join(dir, 'data', 'a.txt'), 'kept\n');
    await writeRc(
      dir,
      `backupRoot: ./backups
host: alert-host
sources:
  docs: { use: files, paths: [./data] }
notify:
  mail: { use: email, url: "smtp://alerts:${SMTP_PASSWORD}@127.0.0.1:${deadPort}", from: backup@example.com, to: ops@example.com, on: [success, failure] }
  hook: { use: webhook, url: "${http.url}/hooks/backup", on: [success, failure] }
`,
    );
  });

  afterAll(async () => {
    await http?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('with the SMTP server down, a good backup still succeeds (exit 0), is recorded, and the failure is in the report and the log', async () => {
    const result = await runCli(['run', '--json'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    const report = result.json();
    expect(report.status).toBe('success');
    expect(report.snapshot).toMatch(/-default-/);
    const mail = report.notifications.find((n: any) => n.channel === 'notify.mail');
    expect(mail).toMatchObject({ status: 'failed', attempts: 4 });
    expect(mail.error).toMatch(/SMTP delivery failed: .*ECONNREFUSED/);
    expect(report.stages.notify.status).toBe('failed');
    // The other channel was not held back by the failing one.
    expect(report.notifications.find((n: any) => n.channel === 'notify.hook')).toMatchObject({ status: 'sent' });
    expect(hook.accepted).toHaveLength(1);
    expect(hook.accepted[0].body.event).toBe('success');

    const warning = logLines(result).find((l) => l.channel === 'notify.mail' && l.level === 'warn');
    expect(warning?.msg).toMatch(/notify\.mail: could not deliver the success notification: SMTP delivery failed/);
    expectNoSecret(result.stderr, 'the log');
    expectNoSecret(result.stdout, 'run --json');

    const list = await runCli(['list', '--json'], { cwd: dir });
    expect(list.json().map((s: any) => s.id)).toEqual([report.snapshot]);
    const status = await runCli(['status', '--json'], { cwd: dir });
    expect(status.json().lastRun).toMatchObject({ status: 'success', snapshot: report.snapshot });
  });

  it('with the SMTP server down, a failing backup exits 1 for the backup alone', async () => {
    await fsp.rm(path.join(dir, 'data'), { recursive: true });
    const result = await runCli(['run', '--json'], { cwd: dir });
    expect(result.code).toBe(1);
    const report = result.json();
    expect(report.errors).toEqual([expect.objectContaining({ plugin: 'sources.docs', stage: 'collect' })]);
    expect(report.notifications.map((n: any) => [n.channel, n.status])).toEqual([
      ['notify.mail', 'failed'],
      ['notify.hook', 'sent'],
    ]);
    expect(hook.accepted.at(-1).body.event).toBe('failure');
  });
});

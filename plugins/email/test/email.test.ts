import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyThrough, sampleRunNotification } from '@sutazai/backup-testkit';
import { parseMail } from '../../../test/helpers/notify-receivers.js';
import { startSmtp, type SmtpTestServer } from '../../../test/helpers/servers.js';
import email from '../src/index.js';

const base = { from: 'backup@example.com', to: ['ops@example.com', 'oncall@example.com'], rejectUnauthorized: false };

describe('email over a real SMTP server', () => {
  let tls: SmtpTestServer;
  let starttls: SmtpTestServer;
  let plain: SmtpTestServer;

  beforeAll(async () => {
    tls = await startSmtp({ secure: true, auth: true });
    starttls = await startSmtp({ starttls: true, auth: true });
    plain = await startSmtp({ auth: true });
  });
  afterAll(async () => {
    await Promise.all([tls?.stop(), starttls?.stop(), plain?.stop()]);
  });

  it('sends over implicit TLS (smtps://) with a login, to every recipient, with text and HTML bodies', async () => {
    const [result] = await notifyThrough([{ plugin: email({ ...base, url: tls.url }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'sent', attempts: 1 });
    expect(tls.messages).toHaveLength(1);
    const message = tls.messages[0]!;
    expect(message.to).toEqual(['ops@example.com', 'oncall@example.com']);
    const mail = parseMail(message.raw);
    expect(mail.subject).toBe('[sutazai-backup] backup FAILED: test-host / daily');
    expect(mail.headers['x-sutazai-event']).toBe('failure');
    expect(mail.parts['text/plain']).toMatch(/sources\.app-db failed at collect: pg_dump exited with code 1/);
    expect(mail.parts['text/html']).toMatch(/<th[^>]*>Profile<\/th><td[^>]*>daily<\/td>/);
    expect(message.raw).not.toContain(tls.password!);
  });

  it('upgrades with STARTTLS', async () => {
    const [result] = await notifyThrough([{ plugin: email({ ...base, url: starttls.url, tls: 'starttls' }) }], sampleRunNotification('recovery'));
    expect(result).toMatchObject({ status: 'sent' });
    expect(parseMail(starttls.messages[0]!.raw).subject).toBe('[sutazai-backup] backup recovered: test-host / daily');
  });

  it('refuses to log in without TLS when STARTTLS is required, and does not retry', async () => {
    const [result] = await notifyThrough([{ plugin: email({ ...base, url: plain.url }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', attempts: 1 });
    expect(result!.error).toMatch(/SMTP delivery failed/);
    expect(plain.messages).toHaveLength(0);
  });

  it('a wrong password fails at once (no retry) and the password is not in the error', async () => {
    const url = tls.url.replace(encodeURIComponent(tls.password!), 'wrong-password-123');
    const [result] = await notifyThrough([{ plugin: email({ ...base, url }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', attempts: 1 });
    expect(result!.error).toMatch(/EAUTH/);
    expect(result!.error).not.toContain('wrong-password-123');
  });

  it("quotes a refusing server's reply on one bounded line, with the password masked", async () => {
    const echoing = await startSmtp({ secure: true, auth: true, rejectRecipients: (c) => `mailbox unavailable for ${c!.user}:${c!.password}\n${'x'.repeat(2000)}` });
    try {
      const [result] = await notifyThrough([{ plugin: email({ ...base, url: echoing.url }) }], sampleRunNotification('failure'));
      expect(result).toMatchObject({ status: 'failed' });
      expect(result!.error).toMatch(/SMTP delivery failed: .*mailbox unavailable for sutazai:/);
      expect(result!.error).not.toContain(echoing.password!);
      expect(result!.error).not.toContain('\n');
      expect(result!.error!.length).toBeLessThan(1000);
    } finally {
      await echoing.stop();
    }
  });
});

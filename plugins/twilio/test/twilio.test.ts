import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyThrough, sampleRunNotification } from '@sutazai/backup-testkit';
import { twilioApi, type Receiver, type Sms } from '../../../test/helpers/notify-receivers.js';
import { startHttpReceiver, type HttpReceiver } from '../../../test/helpers/servers.js';
import twilio from '../src/index.js';

// No Twilio account is reachable from here: a real HTTP server on loopback checks what Twilio's
// Messages API checks and answers as it does.
const SID = `AC${'a1'.repeat(16)}`;
const TOKEN = 'auth-token-Rk38Fq7v';

describe('twilio against an API that checks like Twilio', () => {
  let http: HttpReceiver;
  let api: Receiver<Sms>;

  beforeAll(async () => {
    api = twilioApi(SID, TOKEN);
    http = await startHttpReceiver(api.handler);
  });
  afterAll(async () => {
    await http?.stop();
  });

  it('sends one SMS per recipient, through a Messaging Service', async () => {
    const plugin = twilio({ accountSid: SID, authToken: TOKEN, messagingServiceSid: `MG${'b2'.repeat(16)}`, to: ['+4915112345678', '+4915187654321'], apiBaseUrl: http.url });
    const [result] = await notifyThrough([{ plugin }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'sent', attempts: 1 });
    expect(api.accepted.map((m) => [m.to, m.messagingServiceSid, m.from, m.segments])).toEqual([
      ['+4915112345678', `MG${'b2'.repeat(16)}`, null, 1],
      ['+4915187654321', `MG${'b2'.repeat(16)}`, null, 1],
    ]);
  });

  it("a wrong token is Twilio's 401 (code 20003), reported and not retried", async () => {
    const before = http.requests.length;
    const plugin = twilio({ accountSid: SID, authToken: 'not-the-token', from: '+15005550006', to: '+4915112345678', apiBaseUrl: http.url });
    const [result] = await notifyThrough([{ plugin }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', attempts: 1 });
    expect(result!.error).toBe('Twilio SMS to +4915112345678: HTTP 401: Twilio error 20003: Authenticate');
    expect(http.requests.length - before).toBe(1);
  });

  it('refuses options Twilio would refuse, when the config loads', () => {
    expect(() => twilio({ accountSid: 'AC123', authToken: TOKEN, from: '+15005550006', to: '+4915112345678' })).toThrow(/accountSid: expected the Account SID/);
    expect(() => twilio({ accountSid: SID, authToken: TOKEN, to: '+4915112345678' })).toThrow(/exactly one of from .* or messagingServiceSid/);
    expect(() => twilio({ accountSid: SID, authToken: TOKEN, from: '+15005550006', to: '015112345678' })).toThrow(/E\.164/);
  });
});

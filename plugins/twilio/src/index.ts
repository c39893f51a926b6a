import { BackupError, deliverHttp, defineNotifier, z, type Notification } from '@sutazai/backup-core';
import { fitOneSegment } from './sms.js';

export { fitOneSegment, gsm7Length, GSM7_SEGMENT, UCS2_SEGMENT } from './sms.js';

const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/, 'expected a phone number in E.164 form, e.g. +4915112345678');

export const twilioOptions = z
  .object({
    accountSid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'expected the Account SID (AC followed by 32 hex digits)'),
    /** The account's auth token: a secret, keep it in ${VAR}. */
    authToken: z.string().min(8),
    /** The sending number (E.164) or alphanumeric sender id; or give messagingServiceSid. */
    from: z.string().min(1).optional(),
    messagingServiceSid: z.string().regex(/^MG[0-9a-fA-F]{32}$/, 'expected a Messaging Service SID (MG followed by 32 hex digits)').optional(),
    to: z.union([e164, z.array(e164).min(1)]),
    /** Twilio's API; tests point it at a local server. */
    apiBaseUrl: z.url({ protocol: /^https?$/ }).default('https://api.twilio.com'),
    timeoutMs: z.number().int().positive().default(15_000),
  })
  .strict()
  .refine((o) => Boolean(o.from) !== Boolean(o.messagingServiceSid), { message: 'give exactly one of from (a number) or messagingServiceSid' });

export type TwilioOptions = z.input<typeof twilioOptions>;

/** The SMS text: outcome, host and profile first, then the first thing that went wrong. */
export function smsText(n: Notification): string {
  const first = n.lines[0] ?? '';
  return fitOneSegment(`${n.title}${first ? `. ${first}` : ''}`);
}

/** `use: twilio` — one SMS per recipient through the Messages API. */
export default defineNotifier({
  name: 'twilio',
  options: twilioOptions,
  setup(ctx, options) {
    ctx.secrets.add(options.authToken);
    ctx.secrets.add(Buffer.from(`${options.accountSid}:${options.authToken}`).toString('base64'));
  },
  async send(notification, ctx, options) {
    const recipients = Array.isArray(options.to) ? options.to : [options.to];
    const body = smsText(notification);
    const url = `${options.apiBaseUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${options.accountSid}/Messages.json`;
    const authorization = `Basic ${Buffer.from(`${options.accountSid}:${options.authToken}`).toString('base64')}`;
    for (const to of recipients) {
      const form = new URLSearchParams({ To: to, Body: body });
      if (options.messagingServiceSid) form.set('MessagingServiceSid', options.messagingServiceSid);
      else form.set('From', options.from!);
      const { text } = await deliverHttp(`Twilio SMS to ${to}`, url, {
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        timeoutMs: options.timeoutMs,
        secrets: ctx.plugin.secrets,
      }).catch((err: unknown) => {
        throw explain(err);
      });
      let sid: unknown;
      try {
        sid = (JSON.parse(text) as { sid?: unknown }).sid;
      } catch {
        sid = undefined;
      }
      if (typeof sid !== 'string') throw new BackupError('E_NOTIFY', "Twilio's answer holds no message sid");
      ctx.logger.debug(`Twilio queued message ${sid} to ${to}`);
    }
  },
});

/** Twilio's errors are JSON `{ code, message }`: say that, not the raw body. */
function explain(err: unknown): unknown {
  if (!(err instanceof BackupError)) return err;
  const m = /^(.*): HTTP (\d+)(: |$)/s.exec(err.message);
  const reply = err.details.reply;
  if (!m || typeof reply !== 'string') return err;
  try {
    const body = JSON.parse(reply) as { code?: number; message?: string };
    return new BackupError('E_NOTIFY', `${m[1]}: HTTP ${m[2]}: Twilio error ${body.code ?? '?'}: ${body.message ?? 'no message'}`, {
      details: err.details,
      cause: err,
    });
  } catch {
    return err;
  }
}

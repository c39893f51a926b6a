/**
 * HTTP handlers for `startHttpReceiver` that check requests the way Slack's incoming webhooks,
 * a signed-webhook receiver and Twilio's Messages API do, and answer as they answer. Only
 * requests they accept are added to `accepted`; the rest get the service's error answer.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { HttpHandler, HttpReply, RecordedRequest } from './servers.js';

export interface Receiver<T> {
  handler: HttpHandler;
  accepted: T[];
  rejected: { request: RecordedRequest; reply: HttpReply }[];
}

function receiver<T>(check: (req: RecordedRequest) => { ok: T; reply: HttpReply } | { reply: HttpReply }): Receiver<T> {
  const r: Receiver<T> = {
    accepted: [],
    rejected: [],
    handler: (req) => {
      const result = check(req);
      if ('ok' in result) r.accepted.push(result.ok);
      else r.rejected.push({ request: req, reply: result.reply });
      return result.reply;
    },
  };
  return r;
}

const contentType = (req: RecordedRequest) => String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();

// ---- Slack ----------------------------------------------------------------------------------

export interface SlackMessage {
  text: string;
  blocks: { type: string; text?: { type: string; text: string }; fields?: { type: string; text: string }[]; elements?: unknown[] }[];
  raw: string;
}

const slackError = (status: number, code: string): HttpReply => ({ status, headers: { 'content-type': 'text/plain' }, body: code });

/** Slack's incoming webhook at `path` (`/services/T.../B.../<token>`). */
export function slackWebhook(path: string): Receiver<SlackMessage> {
  return receiver((req) => {
    if (req.path !== path) return { reply: slackError(404, 'no_service') };
    if (req.method !== 'POST') return { reply: slackError(405, 'invalid_method') };
    if (contentType(req) !== 'application/json') return { reply: slackError(400, 'invalid_payload') };
    let body: Partial<SlackMessage>;
    try {
      body = JSON.parse(req.body);
    } catch {
      return { reply: slackError(400, 'invalid_payload') };
    }
    if (typeof body.text !== 'string' || !body.text.trim()) return { reply: slackError(400, 'no_text') };
    const blocks = body.blocks ?? [];
    if (!Array.isArray(blocks) || blocks.length > 50) return { reply: slackError(400, 'invalid_blocks') };
    for (const b of blocks) {
      const ok =
        (b.type === 'header' && b.text?.type === 'plain_text' && b.text.text.length <= 150) ||
        (b.type === 'section' &&
          ((b.text && ['mrkdwn', 'plain_text'].includes(b.text.type) && b.text.text.length <= 3000) ||
            (Array.isArray(b.fields) && b.fields.length <= 10 && b.fields.every((f) => f.text.length <= 2000)))) ||
        (b.type === 'context' && Array.isArray(b.elements) && b.elements.length <= 10) ||
        b.type === 'divider';
      if (!ok) return { reply: slackError(400, 'invalid_blocks') };
    }
    return { ok: { text: body.text, blocks, raw: req.body } as SlackMessage, reply: { status: 200, headers: { 'content-type': 'text/html' }, body: 'ok' } };
  });
}

// ---- a signed webhook receiver ----------------------------------------------------------------

export interface WebhookDelivery {
  headers: RecordedRequest['headers'];
  body: any;
  raw: string;
}

/** A receiver that checks the HMAC-SHA256 signature of the exact body and the required fields. */
export function signedWebhook(path: string, secret: string | undefined, requiredHeaders: Record<string, string> = {}): Receiver<WebhookDelivery> {
  return receiver((req) => {
    if (req.path !== path) return { reply: { status: 404, body: { error: 'not found' } } };
    if (req.method !== 'POST') return { reply: { status: 405, body: { error: 'method not allowed' } } };
    if (contentType(req) !== 'application/json') return { reply: { status: 415, body: { error: 'expected application/json' } } };
    for (const [name, value] of Object.entries(requiredHeaders)) {
      if (req.headers[name.toLowerCase()] !== value) return { reply: { status: 401, body: { error: `missing or wrong ${name}` } } };
    }
    if (secret) {
      const got = String(req.headers['x-sutazai-signature'] ?? '');
      const want = `sha256=${createHmac('sha256', secret).update(req.rawBody).digest('hex')}`;
      if (got.length !== want.length || !timingSafeEqual(Buffer.from(got), Buffer.from(want))) {
        return { reply: { status: 401, body: { error: 'bad signature' } } };
      }
    }
    let body: any;
    try {
      body = JSON.parse(req.body);
    } catch {
      return { reply: { status: 400, body: { error: 'body is not JSON' } } };
    }
    const fields = ['kind', 'event', 'host', 'title', 'time'];
    const missing = fields.filter((f) => typeof body?.[f] !== 'string');
    if (body?.kind === 'run' && typeof body.report?.status !== 'string') missing.push('report.status');
    if (body?.kind === 'health' && typeof body.condition?.name !== 'string') missing.push('condition.name');
    if (missing.length) return { reply: { status: 422, body: { error: `missing ${missing.join(', ')}` } } };
    return { ok: { headers: req.headers, body, raw: req.body }, reply: { status: 202, body: { received: true } } };
  });
}

// ---- a receiver that echoes the request ------------------------------------------------------

/**
 * A server that refuses every request with `status` and echoes it back (by default method, path,
 * headers and body), the way many frameworks' debug error pages and some APIs' 4xx answers do.
 */
export function echoingReceiver(status = 401, echo: (req: RecordedRequest) => string = echoAll): Receiver<never> {
  return receiver((req) => ({ reply: { status, headers: { 'content-type': 'text/plain' }, body: echo(req) } }));
}

const echoAll = (req: RecordedRequest) =>
  `refused ${req.method} ${req.path}\n${Object.entries(req.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\n')}\n\n${req.body}`;

// ---- Twilio -----------------------------------------------------------------------------------

export interface Sms {
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  segments: number;
}

const GSM7 = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM7_EXT = '^{}\\[~]|€\f';

/** Segments as Twilio counts them: GSM-7 (160, or 153 per part) unless a character needs UCS-2 (70 / 67). */
export function smsSegments(body: string): number {
  let septets = 0;
  for (const ch of body) {
    if (GSM7.includes(ch)) septets += 1;
    else if (GSM7_EXT.includes(ch)) septets += 2;
    else {
      const units = body.length;
      return units <= 70 ? 1 : Math.ceil(units / 67);
    }
  }
  return septets <= 160 ? 1 : Math.ceil(septets / 153);
}

const twilioError = (status: number, code: number, message: string): HttpReply => ({
  status,
  body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status },
});

/** Twilio's `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`. */
export function twilioApi(accountSid: string, authToken: string): Receiver<Sms> {
  return receiver((req) => {
    const m = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(req.path);
    if (!m) return { reply: twilioError(404, 20404, `The requested resource ${req.path} was not found`) };
    const auth = String(req.headers.authorization ?? '');
    const expected = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString('base64')}`;
    if (auth !== expected || m[1] !== accountSid) return { reply: twilioError(401, 20003, 'Authenticate') };
    if (req.method !== 'POST') return { reply: twilioError(405, 20004, 'Method not allowed') };
    if (contentType(req) !== 'application/x-www-form-urlencoded') return { reply: twilioError(400, 21604, "A 'To' phone number is required.") };
    const form = new URLSearchParams(req.body);
    const to = form.get('To');
    const from = form.get('From');
    const service = form.get('MessagingServiceSid');
    const body = form.get('Body');
    if (!to) return { reply: twilioError(400, 21604, "A 'To' phone number is required.") };
    if (!/^\+[1-9]\d{6,14}$/.test(to)) return { reply: twilioError(400, 21211, `The 'To' number ${to} is not a valid phone number.`) };
    if (!from && !service) return { reply: twilioError(400, 21603, "A 'From' phone number is required.") };
    if (!body) return { reply: twilioError(400, 21602, 'Message body is required.') };
    if (body.length > 1600) return { reply: twilioError(400, 21617, 'The concatenated message body exceeds the 1600 character limit.') };
    const segments = smsSegments(body);
    const sid = `SM${randomBytes(16).toString('hex')}`;
    return {
      ok: { to, from, messagingServiceSid: service, body, segments },
      reply: {
        status: 201,
        body: {
          sid,
          account_sid: accountSid,
          to,
          from,
          messaging_service_sid: service,
          body,
          status: 'queued',
          num_segments: String(segments),
          direction: 'outbound-api',
          api_version: '2010-04-01',
          date_created: new Date().toUTCString(),
          uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
        },
      },
    };
  });
}

// ---- email ------------------------------------------------------------------------------------

export interface ParsedMail {
  headers: Record<string, string>;
  subject: string;
  /** Decoded bodies by content type (text/plain, text/html). */
  parts: Record<string, string>;
}

/** Just enough MIME for the messages nodemailer writes: unfolded headers, multipart, quoted-printable, base64. */
export function parseMail(raw: string): ParsedMail {
  const [head, ...rest] = raw.split(/\r?\n\r?\n/);
  const headers = parseHeaders(head!);
  const parts: Record<string, string> = {};
  const body = rest.join('\r\n\r\n');
  const boundary = /boundary="?([^";]+)"?/i.exec(headers['content-type'] ?? '')?.[1];
  if (boundary) {
    for (const chunk of body.split(`--${boundary}`).slice(1)) {
      if (chunk.startsWith('--')) break;
      const [ph, ...pb] = chunk.replace(/^\r?\n/, '').split(/\r?\n\r?\n/);
      const h = parseHeaders(ph!);
      parts[(h['content-type'] ?? 'text/plain').split(';')[0]!.trim()] = decode(pb.join('\r\n\r\n'), h['content-transfer-encoding']);
    }
  } else {
    parts[(headers['content-type'] ?? 'text/plain').split(';')[0]!.trim()] = decode(body, headers['content-transfer-encoding']);
  }
  return { headers, subject: headers.subject ?? '', parts };
}

function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

function decode(text: string, encoding: string | undefined): string {
  const enc = (encoding ?? '').toLowerCase();
  if (enc === 'quoted-printable') {
    const s = text.replace(/=\r?\n/g, '');
    const bytes: number[] = [];
    for (let i = 0; i < s.length; i++) {
      const hex = s.slice(i + 1, i + 3);
      if (s[i] === '=' && /^[0-9A-F]{2}$/i.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
    }
    return Buffer.from(bytes).toString('utf8');
  }
  if (enc === 'base64') return Buffer.from(text.replace(/\s+/g, ''), 'base64').toString('utf8');
  return text;
}

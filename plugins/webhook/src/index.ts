import { createHmac, randomUUID } from 'node:crypto';
import { CORE_VERSION, deliverHttp, defineNotifier, TOOL_NAME, z } from '@sutazai/backup-core';

const reserved = new Set(['content-type', 'content-length', 'host']);

export const webhookOptions = z
  .object({
    url: z.url({ protocol: /^https?$/, message: 'expected an http(s):// URL' }),
    method: z.enum(['POST', 'PUT']).default('POST'),
    /** Shared secret: the body is signed with HMAC-SHA256 into `signatureHeader`. */
    secret: z.string().min(8, 'use a secret of at least 8 characters').optional(),
    signatureHeader: z.string().regex(/^[A-Za-z0-9-]+$/, 'expected a header name').default('X-Sutazai-Signature'),
    /** More headers (e.g. Authorization); values of credential headers (Authorization, Cookie, X-Api-Key, ...) are redacted everywhere. */
    headers: z
      .record(z.string(), z.string())
      .superRefine((headers, ctx) => {
        for (const name of Object.keys(headers)) {
          if (!/^[A-Za-z0-9-]+$/.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: 'expected a header name (letters, digits, "-")' });
          else if (reserved.has(name.toLowerCase())) ctx.addIssue({ code: 'custom', path: [name], message: 'this header is set by the plugin; leave it out' });
        }
      })
      .default({}),
    timeoutMs: z.number().int().positive().default(15_000),
  })
  .strict();

export type WebhookOptions = z.input<typeof webhookOptions>;

/** `sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the shared secret. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** `use: webhook` — the notification (with the whole run report) as JSON. */
export default defineNotifier({
  name: 'webhook',
  options: webhookOptions,
  setup(ctx, options) {
    if (options.secret) ctx.secrets.add(options.secret);
    // ?token=... in the URL, Authorization, Cookie, X-Api-Key...: masked in every log, report and quoted reply.
    ctx.secrets.addFromUrl(options.url);
    ctx.secrets.addHeaders(options.headers);
  },
  async send(notification, ctx, options) {
    const body = JSON.stringify(notification);
    const headers: Record<string, string> = {
      ...options.headers,
      'content-type': 'application/json; charset=utf-8',
      'user-agent': `${TOOL_NAME}/${CORE_VERSION}`,
      'x-sutazai-event': notification.event,
      'x-sutazai-kind': notification.kind,
      // The same id on every retry, so a receiver can drop duplicates.
      'x-sutazai-delivery': deliveryId(ctx.notification),
    };
    if (options.secret) headers[options.signatureHeader.toLowerCase()] = signBody(body, options.secret);
    await deliverHttp('webhook', options.url, { method: options.method, headers, body, timeoutMs: options.timeoutMs, secrets: ctx.plugin.secrets });
  },
});

const ids = new WeakMap<object, string>();
function deliveryId(notification: object): string {
  let id = ids.get(notification);
  if (!id) ids.set(notification, (id = randomUUID()));
  return id;
}

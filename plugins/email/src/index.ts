import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { BackupError, defineNotifier, expandHome, quoteReply, z } from '@sutazai/backup-core';
import { renderHtml, renderText, subjectOf } from './render.js';

export { renderHtml, renderText, subjectOf } from './render.js';

const address = z.string().regex(/^[^\s@]+@[^\s@]+$|^.*<[^\s@]+@[^\s@]+>$/, 'expected an email address such as ops@example.com');

export const emailOptions = z
  .object({
    /** smtp://[user:password@]host[:port] (STARTTLS) or smtps://... (TLS from the first byte). */
    url: z.string().regex(/^smtps?:\/\//, 'expected smtp://host:587 or smtps://host:465').optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().optional(),
    password: z.string().optional(),
    /**
     * starttls (default for smtp://): upgrade with STARTTLS or refuse to send; tls (default for
     * smtps:// and port 465): TLS from the first byte; opportunistic: STARTTLS when offered;
     * none: plain text (a relay on loopback only).
     */
    tls: z.enum(['starttls', 'tls', 'opportunistic', 'none']).optional(),
    /** A CA certificate (PEM file) to trust for the server's certificate. */
    ca: z.string().optional(),
    /** Set false only for a server with a self-signed certificate you cannot get a CA for. */
    rejectUnauthorized: z.boolean().default(true),
    from: address,
    to: z.union([address, z.array(address).min(1)]),
    subjectPrefix: z.string().default('[sutazai-backup]'),
    /** Log lines of the run to include at the end of the body. */
    logLines: z.number().int().min(0).max(200).default(20),
    timeoutMs: z.number().int().positive().default(30_000),
  })
  .strict()
  .refine((o) => Boolean(o.url) !== Boolean(o.host), { message: 'give either url (smtp://host:587) or host (with port, user, password)' });

export type EmailOptions = z.input<typeof emailOptions>;

/** nodemailer's transport settings for these options. */
export function transportOptions(options: z.output<typeof emailOptions>, configDir: string) {
  let host = options.host ?? '';
  let port = options.port;
  let user = options.user;
  let password = options.password;
  let implicitTls = false;
  if (options.url) {
    const url = new URL(options.url);
    host = url.hostname;
    port ??= url.port ? Number(url.port) : undefined;
    if (url.username) user ??= decodeURIComponent(url.username);
    if (url.password) password ??= decodeURIComponent(url.password);
    implicitTls = url.protocol === 'smtps:';
  }
  const tls = options.tls ?? (implicitTls || port === 465 ? 'tls' : 'starttls');
  return {
    host,
    port: port ?? (tls === 'tls' ? 465 : 587),
    secure: tls === 'tls',
    requireTLS: tls === 'starttls',
    ignoreTLS: tls === 'none',
    ...(user ? { auth: { user, pass: password ?? '' } } : {}),
    tls: {
      rejectUnauthorized: options.rejectUnauthorized,
      // SNI takes a name, not an address.
      ...(isIP(host) ? {} : { servername: host }),
      ...(options.ca ? { ca: readFileSync(path.resolve(configDir, expandHome(options.ca))) } : {}),
    },
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    logger: false,
    debug: false,
  };
}

/** SMTP answers that will not change by trying again: a refused login, a refused recipient. */
function isPermanent(err: { code?: string; responseCode?: number }): boolean {
  return ['EAUTH', 'EENVELOPE', 'ETLS', 'EMESSAGE'].includes(err.code ?? '') || (err.responseCode ?? 0) >= 500;
}

/** `use: email` — one message per notification to every `to` address. */
export default defineNotifier({
  name: 'email',
  options: emailOptions,
  setup(ctx, options) {
    if (options.password) ctx.secrets.add(options.password);
    if (options.url) ctx.secrets.addFromUrl(options.url);
    if (options.ca) readFileSync(path.resolve(ctx.configDir, expandHome(options.ca)));
  },
  async send(notification, ctx, options) {
    const transport = nodemailer.createTransport(transportOptions(options, ctx.plugin.configDir));
    try {
      const info = await transport.sendMail({
        from: options.from,
        to: options.to,
        subject: subjectOf(notification, options.subjectPrefix),
        text: renderText(notification, options.logLines),
        html: renderHtml(notification, options.logLines),
        headers: { 'X-Sutazai-Event': notification.event },
      });
      ctx.logger.debug(`accepted by the SMTP server: ${quoteReply(String(info.response), ctx.plugin.secrets)}`);
    } catch (err) {
      const e = err as Error & { code?: string; responseCode?: number };
      // The server's reply is quoted as other channels quote theirs: one line, bounded, secrets masked.
      throw new BackupError('E_NOTIFY', `SMTP delivery failed: ${quoteReply(e.message, ctx.plugin.secrets)}${e.code ? ` (${e.code})` : ''}`, {
        cause: err,
        details: { retryable: !isPermanent(e), ...(e.responseCode ? { smtpCode: e.responseCode } : {}) },
      });
    } finally {
      transport.close();
    }
  },
});

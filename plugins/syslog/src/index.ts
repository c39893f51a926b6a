import { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { BackupError, defineNotifier, notificationFacts, runChild, TOOL_NAME, z, type Notification } from '@sutazai/backup-core';

/** Where journald takes native entries; libsystemd drops entries silently when it is missing. */
export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

const FACILITIES = ['user', 'daemon', 'auth', 'syslog', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'] as const;
/** RFC 5424 facility numbers. */
const FACILITY_CODE: Record<(typeof FACILITIES)[number], number> = { user: 1, daemon: 3, auth: 4, syslog: 5, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23 };

export const syslogOptions = z
  .object({
    /** `journald` (its native socket, with fields), `syslog` (a syslog socket), or `auto`: journald when it runs here. */
    target: z.enum(['auto', 'journald', 'syslog']).default('auto'),
    /** The syslog socket (a unix datagram socket: rsyslog's, syslog-ng's, journald's /dev/log). */
    socket: z.string().min(1).default('/dev/log'),
    format: z.enum(['rfc5424', 'rfc3164']).default('rfc5424'),
    facility: z.enum(FACILITIES).default('daemon'),
    tag: z.string().regex(/^[A-Za-z0-9._-]{1,48}$/, 'letters, digits, ".", "_" and "-", up to 48').default(TOOL_NAME),
    /** util-linux's logger program, which writes to unix datagram sockets (Node cannot). */
    logger: z.string().min(1).default('logger'),
    timeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();

export type SyslogOptions = z.input<typeof syslogOptions>;

/** syslog severities (RFC 5424): a failure is an error, a warning a warning, the rest news. */
export const SEVERITY: Record<Notification['event'], { name: 'err' | 'warning' | 'info'; code: number }> = {
  failure: { name: 'err', code: 3 },
  warning: { name: 'warning', code: 4 },
  success: { name: 'info', code: 6 },
  recovery: { name: 'info', code: 6 },
};

/** One line (syslog messages are lines): the title and what to act on, clipped below logger's 1 KiB default. */
export function syslogMessage(n: Notification): string {
  const text = [n.title, ...n.lines].join(' | ').replace(/[\r\n]+/g, ' ');
  return text.length > 900 ? `${text.slice(0, 899)}…` : text;
}

/** journald's fields: MESSAGE, PRIORITY and the identifier, plus the facts as SUTAZAI_* fields for `journalctl SUTAZAI_EVENT=failure`. */
export function journalFields(n: Notification, options: { tag: string; facility: (typeof FACILITIES)[number] }): string {
  const fields: [string, string][] = [
    ['MESSAGE', syslogMessage(n)],
    ['PRIORITY', String(SEVERITY[n.event].code)],
    ['SYSLOG_IDENTIFIER', options.tag],
    ['SYSLOG_FACILITY', String(FACILITY_CODE[options.facility])],
    ['SUTAZAI_EVENT', n.event],
    ['SUTAZAI_KIND', n.kind],
    ...notificationFacts(n).map(([k, v]): [string, string] => [`SUTAZAI_${k.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`, v]),
  ];
  return fields.map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`).join('\n') + '\n';
}

async function isSocket(file: string): Promise<boolean> {
  return (await fsp.stat(file).catch(() => undefined))?.isSocket() ?? false;
}

/** `use: syslog`: the local system log, through journald's native socket or a syslog socket. */
export default defineNotifier({
  name: 'syslog',
  options: syslogOptions,
  async send(notification, ctx, options) {
    const journald = options.target === 'journald' || (options.target === 'auto' && (await isSocket(JOURNAL_SOCKET)));
    const severity = SEVERITY[notification.event];
    const run = (args: string[], input?: string) =>
      runChild({ path: options.logger, name: 'logger' }, args, {
        what: `${ctx.plugin.key}: ${journald ? 'journald' : `syslog socket ${options.socket}`}`,
        code: 'E_NOTIFY',
        secrets: ctx.plugin.secrets,
        logger: ctx.logger,
        signal: AbortSignal.timeout(options.timeoutMs),
        ...(input === undefined ? {} : { input: Readable.from([input]) }),
      });
    if (journald) {
      if (!(await isSocket(JOURNAL_SOCKET))) throw new BackupError('E_NOTIFY', `journald is not running here: ${JOURNAL_SOCKET} is not a socket (use target: syslog)`);
      await run(['--journald'], journalFields(notification, options));
      return;
    }
    // notq: no timeQuality structured data, which logger adds on its own.
    const args = [`--socket=${options.socket}`, '--socket-errors=on', options.format === 'rfc5424' ? '--rfc5424=notq' : '--rfc3164', '-p', `${options.facility}.${severity.name}`, '-t', options.tag, `--id=${process.pid}`];
    if (options.format === 'rfc5424') args.push('--msgid', notification.event);
    await run([...args, '--', syslogMessage(notification)]);
  },
});

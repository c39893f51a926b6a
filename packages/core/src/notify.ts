import path from 'node:path';
import { BackupError, isBackupError } from './errors.js';
import { ownFolder } from './backup-root.js';
import { readOwnFile, writeFileAtomic } from './fs.js';
import { formatBytes } from './progress.js';
import { isTransient } from './replicate.js';
import type { ReportError, RunReport } from './report.js';
import { maskUrlsIn, quoteReply, secrets as defaultSecrets, type SecretRegistry } from './secrets.js';

/** What a notification is about; a channel's `on:` lists the ones it wants. */
export const NOTIFY_EVENTS = ['failure', 'warning', 'success', 'recovery'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** A channel without `on:` hears about failures, warnings and recoveries, not every success. */
export const DEFAULT_NOTIFY_ON: readonly NotifyEvent[] = ['failure', 'warning', 'recovery'];

/** A channel's policy: the engine-handled settings `on` and `throttle` of a `notify:` entry. */
export interface ChannelPolicy {
  on: readonly NotifyEvent[];
  /** A repeated event of the same kind is sent at most once per this many milliseconds. */
  throttleMs: number | undefined;
}

export function channelPolicy(settings: Readonly<Record<string, unknown>>): ChannelPolicy {
  return {
    on: Array.isArray(settings.on) ? (settings.on as NotifyEvent[]) : DEFAULT_NOTIFY_ON,
    throttleMs: typeof settings.throttle === 'number' ? settings.throttle : undefined,
  };
}

/** A health condition that changed: it began (the check fails) or cleared (it passes again). */
export interface HealthChange {
  /** The check's name: `freshness`, `storage`, `verification`, `replication`, `restore-test`, `3-2-1`, `offsite-lag`. */
  name: string;
  /** The profile of a per-profile condition (freshness). */
  profile?: string;
  state: 'begin' | 'clear';
  detail: string;
  /** When the condition began (for a clear: when the failure had begun). */
  since: string;
}

interface NotificationBase {
  event: NotifyEvent;
  host: string;
  /** When the engine sent it. */
  time: string;
  /** One line naming host, profile (or condition) and outcome: a subject, an SMS's first words. */
  title: string;
  /** What a reader needs to act, one line each: `sources.docs failed at collect: ...`. */
  lines: string[];
}

/** The outcome of a run, with its whole report (secrets redacted). */
export interface RunNotification extends NotificationBase {
  kind: 'run';
  profile: string;
  report: RunReport;
}

/** A health condition that began or cleared (`status --notify`). */
export interface HealthNotification extends NotificationBase {
  kind: 'health';
  condition: HealthChange;
}

/** What every notifier receives. */
export type Notification = RunNotification | HealthNotification;

/** How one channel handled one notification: in the run report and `status --notify --json`. */
export interface NotificationResult {
  /** The rc key of the channel: `notify.ops`. */
  channel: string;
  plugin: string;
  event: NotifyEvent;
  status: 'sent' | 'failed' | 'skipped';
  /** Why a channel was skipped (its `on:` list, its throttle). */
  reason?: string;
  attempts?: number;
  error?: string;
  durationMs?: number;
}

/** The state key of what a notification is about: one throttle window and outcome per key. */
export function alertKey(n: Notification): string {
  if (n.kind === 'run') return `run:${n.profile}`;
  return `health:${n.condition.name}${n.condition.profile ? `:${n.condition.profile}` : ''}`;
}

/** The outcome classes whose change starts a new episode (and resets every channel's throttle). */
export type OutcomeClass = 'failure' | 'warning' | 'success';

/** Classifies a finished run; `previous` is the class of the profile's run before it. */
export function runEvent(report: Pick<RunReport, 'status' | 'warnings'>, previous: OutcomeClass | undefined): NotifyEvent {
  if (report.status === 'failed') return 'failure';
  if (previous === 'failure') return 'recovery';
  return report.warnings.length ? 'warning' : 'success';
}

export function outcomeClass(event: NotifyEvent, warnings: number): OutcomeClass {
  if (event === 'failure' || event === 'warning') return event;
  return warnings ? 'warning' : 'success';
}

export type Delivery = { send: true } | { send: false; reason: string };

/** Whether a channel sends this event now: its `on:` list, then its throttle. */
export function decideDelivery(
  policy: ChannelPolicy,
  event: NotifyEvent,
  lastSent: { event: NotifyEvent; sentAt: string } | undefined,
  now: Date,
): Delivery {
  const wanted = policy.on.includes(event) || (event === 'recovery' && policy.on.includes('success'));
  if (!wanted) return { send: false, reason: `on: [${policy.on.join(', ')}] does not include ${event}` };
  if (policy.throttleMs && lastSent && lastSent.event === event) {
    const since = now.getTime() - Date.parse(lastSent.sentAt);
    if (since >= 0 && since < policy.throttleMs) {
      return {
        send: false,
        reason: `throttled: the same ${event} was sent ${formatAge(since)} ago (throttle ${formatAge(policy.throttleMs)})`,
      };
    }
  }
  return { send: true };
}

const outcomeWords: Record<NotifyEvent, string> = {
  failure: 'FAILED',
  warning: 'succeeded with warnings',
  success: 'succeeded',
  recovery: 'recovered',
};

/** Builds the notification of a finished run from its (redacted) report. */
export function runNotification(report: RunReport, event: NotifyEvent, time: Date): RunNotification {
  const lines: string[] = [];
  const failed = report.failedSources ?? [];
  for (const e of report.errors) lines.push(describeReportError(e));
  // What failed comes first (an SMS has room for one line); then what was kept despite it.
  if (report.snapshot && failed.length) lines.push(`partial snapshot ${report.snapshot} committed without ${failed.map((f) => f.source).join(', ')}`);
  for (const d of report.destinations) if (d.status === 'failed') lines.push(`destination ${d.name} failed at replicate: ${d.error ?? 'unknown error'}`);
  if (event !== 'failure') for (const w of report.warnings) lines.push(`warning: ${w}`);
  if (!lines.length && report.snapshot) lines.push(`snapshot ${report.snapshot}: ${report.artifacts.length} artifact(s), ${formatBytes(totalBytes(report))}`);
  return {
    kind: 'run',
    event,
    host: report.host,
    profile: report.profile,
    time: time.toISOString(),
    title: `backup ${outcomeWords[event]}: ${report.host} / ${report.profile}`,
    lines: [...new Set(lines)],
    report,
  };
}

export function healthNotification(host: string, change: HealthChange, event: NotifyEvent, time: Date): HealthNotification {
  const what = change.profile ? `${change.name} of profile ${change.profile}` : change.name;
  return {
    kind: 'health',
    event,
    host,
    time: time.toISOString(),
    title: `${change.state === 'begin' ? (event === 'warning' ? 'health WARNING' : 'health ALERT') : 'health cleared'}: ${what} on ${host}`,
    lines: [change.state === 'begin' ? `${change.name}: ${change.detail}` : `${change.name} is ok again: ${change.detail}`],
    condition: change,
  };
}

/** `sources.docs failed at collect: path /x does not exist`: the failed plugin and stage first. */
export function describeReportError(e: ReportError): string {
  let message = e.message;
  // Messages often start with the plugin's name already; say it once.
  for (const prefix of [`${e.plugin} (${e.stage}): `, `${e.plugin}: `]) if (e.plugin && message.startsWith(prefix)) message = message.slice(prefix.length);
  return `${e.plugin ?? 'the run'} failed at ${e.stage}: ${message}`;
}

function totalBytes(report: RunReport): number {
  return report.artifacts.reduce((s, a) => s + a.bytes, 0);
}

/** The summary table of a notification, as label/value rows (email tables, Slack fields). */
export function notificationFacts(n: Notification): [string, string][] {
  if (n.kind === 'health') {
    const c = n.condition;
    return [
      ['Host', n.host],
      ['Condition', c.name],
      ...(c.profile ? [['Profile', c.profile] as [string, string]] : []),
      ['State', c.state === 'begin' ? 'failing' : 'cleared'],
      [c.state === 'begin' ? 'Since' : 'Had failed since', c.since],
      ['Detail', c.detail],
    ];
  }
  const r = n.report;
  const facts: [string, string][] = [
    ['Host', r.host],
    ['Profile', r.profile],
    ['Outcome', outcomeWords[n.event]],
    ['Snapshot', r.snapshot ?? 'none committed'],
    ['Started', r.startedAt],
    ['Duration', `${(r.durationMs / 1000).toFixed(1)} s`],
    ['Artifacts', `${r.artifacts.length} (${formatBytes(totalBytes(r))})`],
  ];
  const stages = Object.entries(r.stages).map(([name, s]) => `${name} ${s.status}`);
  if (stages.length) facts.push(['Stages', stages.join(', ')]);
  if (r.destinations.length) facts.push(['Destinations', r.destinations.map((d) => `${d.name} ${d.status}`).join(', ')]);
  if (r.errors.length) facts.push(['Errors', String(r.errors.length)]);
  if (r.warnings.length) facts.push(['Warnings', String(r.warnings.length)]);
  return facts;
}

/**
 * Delivery errors worth another try: not a 4xx answer (bad credentials, a rejected payload), nor
 * an error a plugin marked `details.retryable: false` (an SMTP server refusing the login).
 */
export function isTransientDelivery(err: unknown): boolean {
  const status = isBackupError(err) ? (err.details.status as number | undefined) : undefined;
  if (status && status >= 400 && status < 500 && status !== 408 && status !== 429) return false;
  return isTransient(err);
}

export interface HttpDelivery {
  method?: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs?: number;
  /** The secrets to keep out of a quoted reply (the channel's `ctx.secrets`); the request's own credentials always are. */
  secrets?: SecretRegistry;
}

/** How much of a failed answer `details.reply` keeps, for a plugin that parses it (Twilio's JSON error). */
const REPLY_DETAIL = 4096;

/**
 * Sends one HTTP request for a channel and returns the answer's status and text. A non-2xx
 * answer or a network failure throws E_NOTIFY with `details.status`; the message never holds the
 * URL (a Slack webhook URL is itself the secret), and quotes the answer only masked and short:
 * a server may echo the request, credentials and all.
 */
export async function deliverHttp(what: string, url: string, request: HttpDelivery): Promise<{ status: number; text: string }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: request.method ?? 'POST',
      headers: request.headers,
      body: request.body,
      redirect: 'error',
      signal: AbortSignal.timeout(request.timeoutMs ?? 15_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = (err as Error).name === 'TimeoutError' ? 'no answer in time' : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new BackupError('E_NOTIFY', `${what}: request failed: ${reason}`, { cause: err });
  }
  const text = await res.text().catch(() => '');
  if (!res.ok) {
    const known = (request.secrets ?? defaultSecrets).fork();
    known.addFromUrl(url);
    known.addHeaders(request.headers);
    // Masked before it is cut, so that no secret is left half there.
    const head = text.slice(0, 64 * 1024);
    const reply = known.redact(maskUrlsIn(head)).slice(0, REPLY_DETAIL);
    const quoted = quoteReply(head, known);
    throw new BackupError('E_NOTIFY', `${what}: HTTP ${res.status}${quoted ? `: ${quoted}` : ''}`, { details: { status: res.status, reply } });
  }
  return { status: res.status, text };
}

export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return 'forever';
  const h = ms / 3600_000;
  if (h < 1) return `${Math.round(ms / 60_000)}m`;
  if (h < 48) return `${Number(h.toFixed(1))}h`;
  return `${Number((h / 24).toFixed(1))}d`;
}

export interface ConditionState {
  ok: boolean;
  since: string;
  detail: string;
  /** The last begin/clear, for the channels that could not take it yet: sent again at the next check. */
  undelivered?: { change: HealthChange; event: NotifyEvent; channels: string[] };
}

/** What the engine remembers between runs to decide recovery, throttle and begin/clear. */
export interface NotificationState {
  /** The outcome class of each profile's last run. */
  runs: Record<string, { outcome: OutcomeClass; since: string; at: string }>;
  /** The state of each health condition at the last `status --notify`. */
  conditions: Record<string, ConditionState>;
  /** Per channel, per alert key: the last event it sent and when. */
  channels: Record<string, Record<string, { event: NotifyEvent; sentAt: string }>>;
}

function emptyState(): NotificationState {
  return { runs: {}, conditions: {}, channels: {} };
}

/** `<backupRoot>/state/notifications.json`, read fresh and rewritten atomically on each change. */
export class NotificationStateStore {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'notifications.json');
  }

  async read(): Promise<NotificationState> {
    let text: string;
    try {
      text = await readOwnFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as Partial<NotificationState>;
      return { runs: parsed.runs ?? {}, conditions: parsed.conditions ?? {}, channels: parsed.channels ?? {} };
    } catch {
      // A damaged file costs at most one repeated or missed alert; start over rather than stop alerting.
      return emptyState();
    }
  }

  /** Applies a change to the current content: a `status --notify` and a run may write close together. */
  async update(change: (state: NotificationState) => void): Promise<void> {
    const state = await this.read();
    change(state);
    await ownFolder(path.dirname(path.dirname(this.file)), path.basename(path.dirname(this.file)));
    // A rename over the name: a link planted there is replaced, never written through.
    await writeFileAtomic(this.file, JSON.stringify(state, null, 2) + '\n');
  }
}

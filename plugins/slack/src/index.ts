import { deliverHttp, defineNotifier, notificationFacts, TOOL_NAME, z, type Notification } from '@sutazai/backup-core';

export const slackOptions = z
  .object({
    /** The incoming webhook URL (https://hooks.slack.com/services/...): a secret, keep it in ${VAR}. */
    webhook: z.url({ protocol: /^https?$/, message: 'expected the incoming webhook URL, https://hooks.slack.com/services/...' }),
    /** Prepended to failures and warnings, e.g. "<!here>" or "<@U024BE7LH>". */
    mention: z.string().optional(),
    /** Log lines of the run to show in a code block (0: none). */
    logLines: z.number().int().min(0).max(50).default(5),
    timeoutMs: z.number().int().positive().default(15_000),
  })
  .strict();

export type SlackOptions = z.input<typeof slackOptions>;

const emoji: Record<Notification['event'], string> = {
  failure: ':red_circle:',
  warning: ':large_orange_circle:',
  success: ':large_green_circle:',
  recovery: ':large_green_circle:',
};

/** Slack's mrkdwn needs &, < and > escaped. */
const mrkdwn = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** The Block Kit message: header, what happened, a summary of fields, the log tail, context. */
export function slackMessage(n: Notification, options: { mention?: string | undefined; logLines: number }): Record<string, unknown> {
  const urgent = n.event === 'failure' || n.event === 'warning';
  const mention = urgent && options.mention ? `${options.mention} ` : '';
  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: clip(`${n.title}`, 150), emoji: true } },
    { type: 'section', text: { type: 'mrkdwn', text: clip(`${mention}${emoji[n.event]} ${n.lines.map(mrkdwn).join('\n')}`, 3000) } },
    {
      type: 'section',
      fields: notificationFacts(n)
        .slice(0, 10)
        .map(([k, v]) => ({ type: 'mrkdwn', text: clip(`*${mrkdwn(k)}*\n${mrkdwn(v)}`, 2000) })),
    },
  ];
  const tail = n.kind === 'run' ? n.report.logTail.slice(-options.logLines) : [];
  if (tail.length) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip('```' + tail.join('\n').replace(/```/g, "'''") + '```', 3000) } });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `${TOOL_NAME} · ${n.kind === 'run' ? 'run' : 'health check'} · ${n.time}` }] });
  // `text` is the fallback shown in notifications and by clients without blocks.
  return { text: clip(`${mention}${n.title}: ${n.lines[0] ?? ''}`, 3000), blocks };
}

/** `use: slack` — an incoming webhook. */
export default defineNotifier({
  name: 'slack',
  options: slackOptions,
  setup(ctx, options) {
    // The URL is the credential: keep it and its token out of every log and report.
    ctx.secrets.add(options.webhook);
    const token = new URL(options.webhook).pathname.split('/').filter(Boolean).at(-1);
    if (token && token.length >= 8) ctx.secrets.add(token);
  },
  async send(notification, ctx, options) {
    const { text } = await deliverHttp('Slack webhook', options.webhook, {
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify(slackMessage(notification, options)),
      timeoutMs: options.timeoutMs,
      secrets: ctx.plugin.secrets,
    });
    ctx.logger.debug(`Slack answered: ${text.slice(0, 100)}`);
  },
});

import type { EngineContext } from './context.js';
import type { Logger } from './log.js';
import { alertKey, channelPolicy, decideDelivery, type Notification, type NotificationResult, type NotifyEvent } from './notify.js';

/**
 * Hands a notification to every channel (or only the named ones) whose policy (`on`,
 * `throttle`) admits it. Every channel runs even when another fails; a failure is logged and
 * returned, never thrown.
 */
export async function notify(ctx: EngineContext, notification: Notification, logger: Logger = ctx.logger, only?: ReadonlySet<string>): Promise<NotificationResult[]> {
  const key = alertKey(notification);
  const event: NotifyEvent = notification.event;
  const now = ctx.now();
  const state = await ctx.notifications.read();
  const results = new Map<string, NotificationResult>();
  const admitted = new Set<string>();
  for (const entry of ctx.config.notifiers) {
    if (only && !only.has(entry.key)) continue;
    const decision = decideDelivery(channelPolicy(entry.settings), event, state.channels[entry.key]?.[key], now);
    const plugin = entry.plugins[0]?.name ?? entry.use;
    if (decision.send) admitted.add(entry.key);
    results.set(entry.key, {
      channel: entry.key,
      plugin,
      event,
      status: 'skipped',
      reason: decision.send ? 'the plugin does not tap notify' : decision.reason,
    });
  }
  await deliver(ctx, notification, logger, results, { admitted, everyTap: !only });
  const list = [...results.values()];
  for (const r of list) {
    const fields = { channel: r.channel, event, about: key, ...(r.attempts ? { attempts: r.attempts } : {}) };
    if (r.status === 'sent') logger.info(`${r.channel}: sent the ${event} notification (${notification.title})`, fields);
    else if (r.status === 'failed') logger.warn(`${r.channel}: could not deliver the ${event} notification: ${r.error}`, fields);
    else logger.debug(`${r.channel}: ${event} notification not sent: ${r.reason}`, fields);
  }
  const sent = list.filter((r) => r.status === 'sent');
  if (sent.length) {
    await ctx.notifications
      .update((s) => {
        for (const r of sent) (s.channels[r.channel] ??= {})[key] = { event, sentAt: now.toISOString() };
      })
      .catch((err) => logger.warn(`could not save the notification state in ${ctx.stateDir}: ${(err as Error).message}`));
  }
  return list;
}

/** Calls the notify hook (a settled one: every tap runs) and records each channel's outcome in `results`. */
async function deliver(
  ctx: EngineContext,
  notification: Notification,
  logger: Logger,
  results: Map<string, NotificationResult>,
  policy: { admitted: ReadonlySet<string>; everyTap: boolean },
): Promise<void> {
  const event = notification.event;
  const channels = new Set(results.keys());
  const attempts = new Map<string, number>();
  await ctx.hooks.notify
    .promise({
      notification,
      report: notification.kind === 'run' ? notification.report : undefined,
      logger,
      // Taps of hook-only plugins are not channels: they run for every notification, not for resends.
      admits: (tap) => (channels.has(tap) ? policy.admitted.has(tap) : policy.everyTap),
      recordAttempts: (channel, n) => attempts.set(channel, n),
      settle: (tap, outcome) => {
        const previous = results.get(tap);
        if (previous?.status === 'failed') return;
        const tries = attempts.get(tap);
        const common = { channel: tap, plugin: previous?.plugin ?? tap, event, ...(tries ? { attempts: tries } : {}), durationMs: outcome.durationMs };
        if (outcome.error) results.set(tap, { ...common, status: 'failed', error: ctx.secrets.redact(outcome.error.message) });
        else if (previous) results.set(tap, { ...common, status: 'sent' });
      },
    })
    .catch((err) => logger.warn(`notify hook failed: ${ctx.secrets.redact((err as Error).message)}`));
}

import type { CheckResult } from './checks.js';
import type { EngineContext } from './context.js';
import { notify } from './notifier.js';
import { healthNotification, type ConditionState, type HealthChange, type NotificationResult, type NotifyEvent } from './notify.js';

/** The checks of `status` that `status --notify` alerts on when they begin and when they clear. */
export const HEALTH_CONDITIONS = ['freshness', 'storage', 'verification', 'replication', 'restore-test', '3-2-1', 'offsite-lag'] as const;
/** A condition that is a warning rather than a failure (a channel's `on:` tells them apart). */
const warningConditions: ReadonlySet<string> = new Set(['storage']);

/** The state key of a condition: its name, and the profile of a per-profile one (`freshness:weekly`). */
export function conditionKey(c: { name: string; profile?: string | undefined }): string {
  return c.profile ? `${c.name}:${c.profile}` : c.name;
}

/** A condition is present when its check fails, or passes with a warning (a condition of severity `warning`). */
const present = (c: CheckResult) => !c.ok || c.warning === true;

/** The event of a condition that began: `warning` for a warning, else `failure`. */
const beginEvent = (c: CheckResult): NotifyEvent => (c.warning || warningConditions.has(c.name) ? 'warning' : 'failure');

/** Compares each health condition with the last check's, logs one line each, and alerts on changes. */
export async function notifyHealth(ctx: EngineContext, checks: CheckResult[], now: Date): Promise<{ changes: HealthChange[]; notifications: NotificationResult[] }> {
  const state = await ctx.notifications.read();
  const at = now.toISOString();
  const changes: { change: HealthChange; event: NotifyEvent }[] = [];
  const conditions = checks.filter((c) => (HEALTH_CONDITIONS as readonly string[]).includes(c.name));
  const next: Record<string, ConditionState> = {};
  const resends: NonNullable<ConditionState['undelivered']>[] = [];
  for (const c of conditions) {
    const key = conditionKey(c);
    const prev = state.conditions[key];
    const detail = c.detail ?? '';
    const ok = !present(c);
    const transition = !ok && (!prev || prev.ok) ? 'begin' : ok && prev && !prev.ok ? 'clear' : undefined;
    const since = prev && prev.ok === ok ? prev.since : at;
    next[key] = { ok, since, detail };
    // A begin or clear a channel could not take (its server was down) is sent again, to it alone.
    if (!transition && prev?.undelivered) resends.push(prev.undelivered);
    if (transition) {
      const change: HealthChange = { name: c.name, ...(c.profile ? { profile: c.profile } : {}), state: transition, detail, since: transition === 'clear' ? prev!.since : at };
      changes.push({ change, event: transition === 'clear' ? 'recovery' : beginEvent(c) });
    }
    logCondition(ctx, c, transition, since);
  }
  await ctx.notifications.update((s) => {
    // A condition no longer checked (`off`, a profile removed) is forgotten without a clear.
    for (const key of Object.keys(s.conditions)) if (!(key in next)) delete s.conditions[key];
    Object.assign(s.conditions, next);
    for (const { change } of changes) for (const sent of Object.values(s.channels)) delete sent[`health:${conditionKey(change)}`];
  });
  const notifications: NotificationResult[] = [];
  const undelivered: Record<string, ConditionState['undelivered']> = {};
  const send = async (change: HealthChange, event: NotifyEvent, only?: ReadonlySet<string>) => {
    const results = await notify(ctx, healthNotification(ctx.config.host, ctx.secrets.redactDeep(change), event, now), ctx.logger, only);
    notifications.push(...results);
    const failed = results.filter((r) => r.status === 'failed').map((r) => r.channel);
    undelivered[conditionKey(change)] = failed.length ? { change, event, channels: failed } : undefined;
  };
  for (const { change, event } of changes) await send(change, event);
  for (const r of resends) await send(r.change, r.event, new Set(r.channels));
  await ctx.notifications.update((s) => {
    for (const [key, pending] of Object.entries(undelivered)) {
      const condition = s.conditions[key];
      if (!condition) continue;
      if (pending) condition.undelivered = pending;
      else delete condition.undelivered;
    }
  });
  return { changes: changes.map((c) => c.change), notifications };
}

function logCondition(ctx: EngineContext, c: CheckResult, transition: 'begin' | 'clear' | undefined, since: string): void {
  const detail = c.detail ?? '';
  const failing = present(c);
  const fields = { condition: c.name, ...(c.profile ? { profile: c.profile } : {}), ok: !failing, state: transition ?? (failing ? 'failing' : 'ok'), since };
  const name = c.profile ? `${c.name} (${c.profile})` : c.name;
  if (transition === 'begin') ctx.logger[beginEvent(c) === 'failure' ? 'error' : 'warn'](`health ${name}: began failing: ${detail}`, fields);
  else if (transition === 'clear') ctx.logger.info(`health ${name}: cleared: ${detail}`, fields);
  else if (failing) ctx.logger.warn(`health ${name}: still failing since ${since}: ${detail}`, fields);
  else ctx.logger.info(`health ${name}: ok: ${detail}`, fields);
}

import { BACKUP_ROOT, recordHistory } from '../context.js';
import { notify } from '../notifier.js';
import { outcomeClass, runEvent, runNotification, type OutcomeClass } from '../notify.js';
import type { BackupRun } from './backup-run.js';

/**
 * The end of every run, failed or not: the times, the event (failure, warning, success,
 * recovery), one log line, the notifications, the history, and the `done` hook.
 */
export async function finish(backup: BackupRun): Promise<void> {
  const { ctx, report, run } = backup;
  const dryRun = Boolean(backup.options.dryRun);
  const finished = ctx.now();
  report.finishedAt = finished.toISOString();
  report.durationMs = Math.max(0, finished.getTime() - backup.startedAt.getTime());
  report.failedSources = backup.sources.records((m) => ctx.secrets.redact(m));
  if (report.errors.length) report.status = 'failed';
  if (!dryRun) {
    const previous = await previousOutcome(backup).catch((err) => {
      run.logger.warn(`could not read the notification state in ${ctx.stateDir}: ${(err as Error).message}`);
      return undefined;
    });
    report.event = runEvent(report, previous);
  }
  logOutcome(backup);
  report.logTail = run.logger.tail(30);
  if (!dryRun && report.event) await notifyRun(backup, finished);
  if (!dryRun) {
    await recordHistory(
      ctx,
      {
        kind: 'run',
        status: report.status,
        startedAt: report.startedAt,
        finishedAt: report.finishedAt,
        profile: report.profile,
        snapshot: report.snapshot,
        repository: BACKUP_ROOT,
        bytes: report.artifacts.reduce((s, a) => s + a.bytes, 0),
        errors: report.errors,
        ...(report.failedSources.length ? { failedSources: report.failedSources.map((f) => f.source) } : {}),
        destinations: report.destinations.map((d) => ({ name: d.name, status: d.status, ...(d.error ? { error: d.error } : {}) })),
        ...(report.event ? { event: report.event } : {}),
        notifications: report.notifications.map((n) => ({ channel: n.channel, status: n.status })),
      },
      'the run',
      run.logger,
    );
  }
  await ctx.hooks.done.promise(report).catch((err) => run.logger.warn(`done hook failed: ${(err as Error).message}`));
}

/** The log is always a channel: one structured line per run. */
function logOutcome({ report, run }: BackupRun): void {
  const line = `run ${report.status}: profile ${report.profile}${report.snapshot ? `, snapshot ${report.snapshot}` : ', no snapshot committed'}`;
  const fields = { event: report.event ?? undefined, profile: report.profile, snapshot: report.snapshot, durationMs: report.durationMs };
  if (report.status === 'success') run.logger.info(line, { ...fields, ...(report.warnings.length ? { warnings: report.warnings } : {}) });
  else run.logger.error(line, { ...fields, errors: report.errors.map((e) => `${e.plugin ? `${e.plugin} ` : ''}(${e.stage}) ${e.message}`) });
}

/** The notify stage: the profile's outcome remembered (a new episode resets throttles), then every channel. */
async function notifyRun(backup: BackupRun, finished: Date): Promise<void> {
  const { ctx, report, run } = backup;
  const t0 = Date.now();
  const event = report.event!;
  try {
    const outcome = outcomeClass(event, report.warnings.length);
    await ctx.notifications.update((state) => {
      const prev = state.runs[report.profile];
      state.runs[report.profile] = { outcome, since: prev?.outcome === outcome ? prev.since : report.finishedAt, at: report.finishedAt };
      // A new episode: every channel's throttle for this profile starts over.
      if (prev?.outcome !== outcome) for (const sent of Object.values(state.channels)) delete sent[`run:${report.profile}`];
    });
    report.notifications = await notify(ctx, runNotification(ctx.secrets.redactDeep(report), event, finished), run.logger);
    const failed = report.notifications.some((n) => n.status === 'failed');
    report.stages.notify = { status: failed ? 'failed' : 'ok', durationMs: Date.now() - t0 };
  } catch (err) {
    report.stages.notify = { status: 'failed', durationMs: Date.now() - t0 };
    const message = ctx.secrets.redact((err as Error).message);
    run.logger.warn(`notify stage failed: ${message}`);
    report.warnings.push(`notify: ${message}`);
  }
}

/** The outcome of the profile's previous run: from the notification state, else the history. */
async function previousOutcome({ ctx, report }: BackupRun): Promise<OutcomeClass | undefined> {
  const state = await ctx.notifications.read();
  const run = state.runs[report.profile];
  if (run) return run.outcome;
  const last = await ctx.history.last('run', (r) => r.profile === report.profile);
  return last ? (last.status === 'failed' ? 'failure' : 'success') : undefined;
}

import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import {
  DEFAULT_RETENTION,
  Engine,
  newReport,
  runNotification,
  silentLogger,
  type Logger,
  type Notification,
  type NotificationResult,
  type NotifyEvent,
  type Plugin,
  type ResolvedConfig,
  type RunReport,
} from '@sutazai/backup-core';

export interface ChannelUnderTest {
  /** The instance name under `notify:` (default `test`). */
  name?: string;
  /** What the factory returned: `email({ url, from, to })`. */
  plugin: Plugin | Plugin[] | null | false | undefined;
  /** The engine-handled settings: `{ on: ['success'], throttle: 3600_000 }`. */
  settings?: Record<string, unknown>;
}

/**
 * Delivers one notification through real engine code (policy, retries, settle-all semantics) to
 * the given channels, as `run` or `status --notify` would, and returns what each channel did.
 * Notification state goes to `stateRoot` (a fresh temporary folder when not given).
 */
export async function notifyThrough(
  channels: ChannelUnderTest[],
  notification: Notification,
  options: { stateRoot?: string; logger?: Logger } = {},
): Promise<NotificationResult[]> {
  const backupRoot = options.stateRoot ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-notify-')));
  const config: ResolvedConfig = {
    file: undefined,
    dir: backupRoot,
    raw: {},
    backupRoot,
    host: notification.host,
    compression: 'none',
    compressionLevel: undefined,
    concurrency: 1,
    retention: DEFAULT_RETENTION,
    profiles: {},
    sources: [],
    destinations: [],
    notifiers: channels.map((c, i) => {
      const name = c.name ?? (channels.length === 1 ? 'test' : `test${i + 1}`);
      const plugins = (Array.isArray(c.plugin) ? c.plugin : [c.plugin]).filter((p): p is Plugin => Boolean(p));
      return { key: `notify.${name}`, instance: name, kind: 'notifier', use: plugins[0]?.name ?? name, resolved: '', options: {}, settings: c.settings ?? {}, plugins };
    }),
    encryption: undefined,
    plugins: [],
    checks: { maxAgeMs: 26 * 3600_000, maxStorageUsage: 0.85, threeTwoOne: 'warning', offsiteLag: { severity: 'warning' } },
    logLevel: undefined,
    strictPermissions: false,
    warnings: [],
  };
  const engine = new Engine(config, { logger: options.logger ?? silentLogger() });
  try {
    await engine.init();
    return await engine.notify(notification);
  } finally {
    await engine.close();
    if (!options.stateRoot) await fsp.rm(backupRoot, { recursive: true, force: true });
  }
}

/**
 * A run report as the engine writes it, for a run that failed at a source's collect (the default)
 * or succeeded; override any field.
 */
export function sampleRunReport(outcome: 'failed' | 'success' = 'failed', overrides: Partial<RunReport> = {}): RunReport {
  const startedAt = new Date('2026-11-26T02:00:00Z');
  const report = newReport('daily', 'test-host', startedAt, false);
  report.finishedAt = new Date(startedAt.getTime() + 4200).toISOString();
  report.durationMs = 4200;
  if (outcome === 'failed') {
    report.status = 'failed';
    report.stages = { collect: { status: 'failed', durationMs: 12 } };
    report.errors = [{ stage: 'collect', plugin: 'sources.app-db', code: 'E_SOURCE', message: 'sources.app-db: pg_dump exited with code 1: connection refused' }];
  } else {
    report.snapshot = '20261126T020000Z-daily-3f9a';
    report.stages = { collect: { status: 'ok', durationMs: 12 }, archive: { status: 'ok', durationMs: 3000 }, verify: { status: 'ok', durationMs: 900 }, commit: { status: 'ok', durationMs: 5 } };
    report.artifacts = [{ source: 'app-db', plugin: 'postgres', file: 'app-db.sutazai.pgdump.zst', bytes: 1_048_576, rawBytes: 4_194_304, sha256: 'ab'.repeat(32), durationMs: 3000 }];
  }
  report.logTail = [`${report.startedAt} info  run started: profile daily`];
  return { ...report, ...overrides };
}

/** The notification of a sample run (see sampleRunReport). */
export function sampleRunNotification(event: NotifyEvent = 'failure', overrides: Partial<RunReport> = {}): Notification {
  const report = sampleRunReport(event === 'failure' ? 'failed' : 'success', { event, ...overrides });
  return runNotification(report, event, new Date(report.finishedAt));
}

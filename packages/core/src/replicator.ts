import { mapLimit } from './concurrency.js';
import type { EngineContext } from './context.js';
import { BackupError, isBackupError } from './errors.js';
import type { RegisteredDestination, RunContext } from './hooks.js';
import type { Logger } from './log.js';
import { decideRetention, policyFor } from './pruner.js';
import { DEFAULT_RETRY } from './replicate.js';
import type { DestinationResult } from './report.js';
import type { RetentionPolicy } from './retention.js';

/**
 * Brings every destination up to date, a few at a time: each gets the snapshots its retention
 * keeps and it lacks, newest first (so a failure costs the oldest), skipping objects already
 * there (what an interrupted run sent). Returns one error per destination that failed; the
 * others are unaffected. Each destination's result goes into the run's report.
 */
export async function replicateAll(ctx: EngineContext, run: RunContext, logger: Logger): Promise<BackupError[]> {
  const localIds = await ctx.repositories.local.snapshotIds();
  const failures: BackupError[] = [];
  await mapLimit([...ctx.repositories.destinations.values()], ctx.config.concurrency, async (d) => {
    const result = await replicateTo(ctx, d, localIds, logger);
    if (result.error) failures.push(result.error);
    run.report.destinations.push(result.result);
  });
  return failures;
}

async function replicateTo(ctx: EngineContext, d: RegisteredDestination, localIds: string[], logger: Logger): Promise<{ result: DestinationResult; error?: BackupError }> {
  const t0 = Date.now();
  const plugin = `destinations.${d.name}`;
  const log = logger.child({ plugin });
  const result: DestinationResult = { name: d.name, status: 'ok', sent: 0, skipped: 0, bytes: 0, durationMs: 0, snapshots: [] };
  const local = ctx.repositories.local;
  const target = ctx.repositories.at(d.name);
  let failure: BackupError | undefined;
  try {
    const listing = await target.listing();
    const wanted = retained(ctx, [...new Set([...localIds, ...listing.ids])], d.retention).filter((id) => localIds.includes(id) && !listing.ids.includes(id));
    log.debug(`${d.name} holds ${listing.ids.length} snapshot(s); sending ${wanted.length}`);
    for (const id of wanted.reverse()) {
      const manifest = await local.readManifest(id);
      const copied = await target.receive(local, manifest, listing, { retry: DEFAULT_RETRY, logger: log, at: ctx.now() });
      result.sent += copied.sent;
      result.skipped += copied.skipped;
      result.bytes += copied.bytes;
      result.snapshots!.push(id);
    }
    log.info(`replicated to ${d.name}: ${result.sent} object(s) sent, ${result.skipped} already there`);
  } catch (err) {
    const error = isBackupError(err) ? err : new BackupError('E_DESTINATION', `${plugin}: ${(err as Error).message}`, { cause: err });
    error.plugin ??= plugin;
    error.stage ??= 'replicate';
    result.status = 'failed';
    result.code = error.code;
    result.error = ctx.secrets.redact(error.message);
    failure = error;
    log.error(`replication to ${d.name} failed: ${result.error}`);
  }
  result.durationMs = Date.now() - t0;
  return { result, ...(failure ? { error: failure } : {}) };
}

/** The ids a retention policy keeps (by each snapshot's profile when no override is given). */
function retained(ctx: EngineContext, ids: string[], override: RetentionPolicy | undefined): string[] {
  return decideRetention(ids, policyFor(ctx.config.profiles, override), new Set(), ctx.now())
    .filter((d) => d.keep)
    .map((d) => d.id)
    .sort();
}

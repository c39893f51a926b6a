import { conditionResult, type CheckResult } from './checks.js';
import { BACKUP_ROOT, type EngineContext } from './context.js';
import type { DestinationTraits } from './destination.js';
import { tightestMaxAge } from './freshness.js';
import type { HistoryRecord } from './history.js';
import { formatAge } from './notify.js';
import { parseSnapshotId } from './snapshot-id.js';

export interface Strategy {
  copies: number;
  media: number;
  offsite: boolean;
  compliant: boolean;
}

/** 3-2-1: copies (backupRoot, and each destination whose last replication succeeded), media, offsite. */
export function strategy(ctx: EngineContext, records: HistoryRecord[], latest: string | null): Strategy {
  const traits: DestinationTraits[] = [{ medium: 'local-disk', offsite: false }];
  const lastReplication = new Map<string, 'ok' | 'failed'>();
  for (const r of records) if (r.kind === 'run') for (const d of r.destinations ?? []) lastReplication.set(d.name, d.status);
  for (const d of ctx.repositories.destinations.values()) if (lastReplication.get(d.name) === 'ok') traits.push(d.traits);
  const copies = latest ? traits.length : 0;
  const media = new Set(traits.map((t) => t.medium)).size;
  const offsite = traits.some((t) => t.offsite);
  return { copies, media, offsite, compliant: copies >= 3 && media >= 2 && offsite };
}

/** `checks.threeTwoOne`: the 3-2-1 rule as a health condition (undefined when `off`). */
export function threeTwoOneCheck(ctx: EngineContext, s: Strategy): CheckResult | undefined {
  const severity = ctx.config.checks.threeTwoOne;
  if (severity === 'off') return undefined;
  const media = `${s.media} medi${s.media === 1 ? 'um' : 'a'}`;
  const counted = `${s.copies} cop${s.copies === 1 ? 'y' : 'ies'}, ${media}, ${s.offsite ? 'one off site' : 'none off site'}`;
  const missing = [s.copies < 3 && '3 copies', s.media < 2 && '2 media', !s.offsite && 'one copy off site'].filter(Boolean);
  return conditionResult('3-2-1', !s.compliant, severity, s.compliant ? `${counted} (compliant)` : `${counted}: not compliant (needs ${missing.join(', ')})`);
}

/**
 * `checks.offsiteLag`: each offsite destination's newest copy (the newest snapshot a run
 * replicated there successfully) must be younger than `maxAge` (default: the smallest maxAge of
 * the profiles). Undefined when `off`, or when no destination is off site (3-2-1 says so).
 */
export function offsiteLagCheck(ctx: EngineContext, records: HistoryRecord[], latest: string | null, now: Date): CheckResult | undefined {
  const { severity, maxAgeMs } = ctx.config.checks.offsiteLag;
  const offsite = [...ctx.repositories.destinations.values()].filter((d) => d.traits.offsite).map((d) => d.name);
  if (severity === 'off' || !offsite.length) return undefined;
  const maxAge = maxAgeMs ?? tightestMaxAge(ctx.config);
  if (!latest) return conditionResult('offsite-lag', false, severity, 'no snapshot yet');
  const newest = new Map<string, string>();
  for (const r of records) {
    if (r.kind !== 'run' || !r.snapshot) continue;
    for (const d of r.destinations ?? []) if (d.status === 'ok' && r.snapshot > (newest.get(d.name) ?? '')) newest.set(d.name, r.snapshot);
  }
  const parts: string[] = [];
  let lagging = false;
  for (const name of offsite) {
    const id = newest.get(name);
    const age = id ? now.getTime() - parseSnapshotId(id)!.time.getTime() : Infinity;
    if (age > maxAge) lagging = true;
    parts.push(id ? `${name}: newest copy ${id} is ${formatAge(Math.max(0, age))} old` : `${name}: nothing replicated yet`);
  }
  return conditionResult('offsite-lag', lagging, severity, `${parts.join('; ')} (max ${formatAge(maxAge)})`);
}

/**
 * The last restore test: a failed one, or one older than `checks.restoreTest.maxAge`, fails;
 * none at all while restore tests are configured (`checks.restoreTest`, or a profile's
 * `restoreTest: true`) is a condition of `checks.restoreTest.severity` (default warning, critical
 * with a `maxAge`).
 */
export function restoreTestCheck(ctx: EngineContext, records: HistoryRecord[], now: Date): CheckResult {
  const last = [...records].reverse().find((r) => r.kind === 'restore-test');
  const configured = ctx.config.checks.restoreTest;
  const maxAge = configured?.maxAgeMs;
  if (!last) {
    const expected = configured !== undefined || Object.values(ctx.config.profiles).some((p) => p.restoreTest);
    // An explicit maxAge asked for a test within it: never having one fails, as it always did.
    const severity = configured?.severity ?? (maxAge ? 'critical' : 'warning');
    const detail = expected ? 'no restore test has run yet, though restore tests are configured' : 'no restore test recorded yet';
    return severity === 'off' ? { name: 'restore-test', ok: true, detail } : conditionResult('restore-test', expected, severity, detail);
  }
  const where = `${last.snapshot ?? 'no snapshot'} from ${last.repository ?? BACKUP_ROOT}`;
  if (last.status === 'failed') return { name: 'restore-test', ok: false, detail: `restore test of ${where} failed at ${last.finishedAt}` };
  const age = now.getTime() - Date.parse(last.finishedAt);
  if (maxAge && age > maxAge) {
    return { name: 'restore-test', ok: false, detail: `the last restore test (${where}) passed ${formatAge(age)} ago (max ${formatAge(maxAge)})` };
  }
  return { name: 'restore-test', ok: true, detail: `restore test of ${where} passed at ${last.finishedAt}` };
}

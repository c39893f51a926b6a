import path from 'node:path';
import type { EngineContext } from './context.js';
import { BackupError } from './errors.js';
import type { Manifest } from './manifest.js';
import { restoreSnapshot } from './restore-command.js';

/**
 * The order a disaster recovery restores sources in, by their plugin: configuration and files
 * first (what the rest is set up from), then databases, monitoring data, models, and last logs
 * and anything else (a command source, a plugin of your own). A files source named like a log
 * (`logs`, `app-log`) goes last with the logs.
 */
export const RECOVERY_PHASES: readonly { phase: string; plugins: readonly string[] }[] = [
  { phase: 'configuration and files', plugins: ['files'] },
  { phase: 'databases', plugins: ['sqlite', 'postgres'] },
  { phase: 'monitoring', plugins: ['prometheus', 'grafana'] },
  { phase: 'models', plugins: ['ollama'] },
  { phase: 'logs and the rest', plugins: [] },
];

export interface RecoveryStep {
  order: number;
  phase: string;
  source: string;
  plugin: string;
  /** The newest snapshot at the destination that holds this source; null when none does. */
  snapshot: string | null;
  /** Where it is written (`DIR/<source>`), or null when it cannot be. */
  target: string | null;
  note?: string;
}

export interface RecoveryResult {
  from: string;
  to: string | null;
  plan: boolean;
  steps: RecoveryStep[];
  /** Sources restored (not in a plan). */
  restored: string[];
  /** Every source with a snapshot was restored (a plan: would be). */
  complete: boolean;
}

/**
 * `recover --from DEST`: when backupRoot is gone, restores the newest snapshot of each source
 * the destination holds, in RECOVERY_PHASES order, into folders under `to` (never in place: the
 * old paths may hold what is left of the broken system; a database source lands as its dump
 * file, to load with `restore --into`). `plan` says what would happen and writes nothing.
 */
export async function recover(ctx: EngineContext, options: { from: string; to?: string; plan?: boolean; force?: boolean }): Promise<RecoveryResult> {
  if (!options.from) throw new BackupError('E_USAGE', 'recover needs --from DEST (the destination to recover from)');
  if (!options.plan && !options.to) throw new BackupError('E_USAGE', 'recover needs --to DIR (or --plan to see what it would do)');
  const repo = ctx.repositories.at(options.from);
  const { manifests, broken } = await repo.manifests();
  for (const b of broken) ctx.logger.warn(`snapshot ${b.id}: ${b.error.message}; left out of the recovery`);
  const steps = planSteps(ctx, manifests.reverse(), options.to);
  const result: RecoveryResult = { from: repo.name, to: options.to ?? null, plan: Boolean(options.plan), steps, restored: [], complete: steps.every((s) => s.snapshot) };
  if (options.plan) return result;
  for (const step of steps) {
    if (!step.snapshot) continue;
    ctx.logger.info(`recover ${step.order}/${steps.length}: ${step.source} (${step.phase}) from ${step.snapshot}`);
    await restoreSnapshot(ctx, { snapshot: step.snapshot, to: options.to!, sources: [step.source], from: options.from, ...(options.force ? { force: true } : {}) });
    result.restored.push(step.source);
  }
  return result;
}

/** One step per source (the rc file's, then any other the destination holds), newest snapshot first found. */
function planSteps(ctx: EngineContext, newestFirst: Manifest[], to: string | undefined): RecoveryStep[] {
  const configured = new Map(ctx.config.sources.map((s) => [s.instance, s.use]));
  const held = newestFirst.flatMap((m) => m.artifacts.map((a) => a.source));
  const sources = [...new Set([...configured.keys(), ...held])];
  const unordered = sources.map((source) => {
    const manifest = newestFirst.find((m) => m.artifacts.some((a) => a.source === source));
    const plugin = manifest?.artifacts.find((a) => a.source === source)?.plugin ?? shortName(configured.get(source) ?? '?');
    return { source, plugin, manifest, rank: phaseOf(source, plugin) };
  });
  unordered.sort((a, b) => a.rank - b.rank);
  return unordered.map(({ source, plugin, manifest, rank }, i) => ({
    order: i + 1,
    phase: RECOVERY_PHASES[rank]!.phase,
    source,
    plugin,
    snapshot: manifest?.id ?? null,
    target: manifest && to ? path.join(to, source) : null,
    ...noteFor(source, plugin, manifest, to),
  }));
}

function noteFor(source: string, plugin: string, manifest: Manifest | undefined, to: string | undefined): { note?: string } {
  if (!manifest) return { note: 'no snapshot at the destination holds this source: it cannot be recovered from here' };
  if (!to) return { note: 'no target: give --to DIR' };
  if (plugin === 'postgres') return { note: `as its dump file; load it into a server with: sutazai-backup restore ${manifest.id} --source ${source} --into URL` };
  return {};
}

function phaseOf(source: string, plugin: string): number {
  if (plugin === 'files' && /log/i.test(source)) return RECOVERY_PHASES.length - 1;
  const i = RECOVERY_PHASES.findIndex((p) => p.plugins.includes(plugin));
  return i === -1 ? RECOVERY_PHASES.length - 1 : i;
}

/** `@sutazai/backup-plugin-files` → `files`, for a source whose plugin no snapshot names. */
function shortName(use: string): string {
  return use.replace(/^@sutazai\/backup-plugin-/, '');
}

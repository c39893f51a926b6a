/**
 * Prune: what retention removes from one repository, and the only code that deletes snapshots
 * besides `forget`. Three rules hold the line:
 * - A snapshot is removed only when its profile's policy (or the destination's own `retention`)
 *   removes it with every snapshot treated as good; suspects (failed verification) fill no bucket
 *   but are never removed for the failure (retention.ts).
 * - A profile that is no longer configured keeps all its snapshots.
 * - A folder under snapshots/ without a manifest is removed only when it holds the tool's marker
 *   and the marker is older than the grace period; any other is reported and left alone.
 */
import { BackupError } from './errors.js';
import type { HistoryRecord } from './history.js';
import type { Logger } from './log.js';
import { isPartial } from './manifest.js';
import type { SnapshotListing, SnapshotRepository as Repository } from './repository-format.js';
import { applyRetention, describePolicy, type RetentionDecision, type RetentionPolicy } from './retention.js';
import { parseSnapshotId, isSnapshotId } from './snapshot-id.js';
import { describeSuspect, suspectReason, type SuspectSnapshot } from './suspects.js';

/** How long a marked folder without a manifest may be an upload or deletion still under way. */
export const INCOMPLETE_GRACE_MS = 24 * 3600_000;

/** A folder with the tool's marker and no manifest: an interrupted upload or deletion. */
export interface IncompleteSnapshot {
  id: string;
  objects: number;
  state: 'uploading' | 'deleting';
  since: string;
  /** Removed (or, in a dry run, to be removed): the marker is older than the grace period. */
  removed: boolean;
}

/** A folder named like a snapshot with neither manifest nor marker: not the tool's, left alone. */
export interface ForeignFolder {
  id: string;
  objects: number;
  bytes: number;
}

export interface PruneResult {
  repository: string;
  dryRun: boolean;
  /** The policy applied: the destination's own, or "per profile". */
  policy: string;
  kept: RetentionDecision[];
  removed: RetentionDecision[];
  /** Suspects at this repository that are kept (the policy still keeps them). */
  suspects: SuspectSnapshot[];
  incomplete: IncompleteSnapshot[];
  foreign: ForeignFolder[];
  /** How many incomplete snapshots were (or would be) removed. */
  orphans: number;
}

/** Which policy applies to a profile's snapshots; undefined: the profile is not configured (keep). */
export type PolicyFor = (profile: string) => RetentionPolicy | undefined;

export function policyFor(profiles: Readonly<Record<string, { retention: RetentionPolicy }>>, override: RetentionPolicy | undefined): PolicyFor {
  return (profile) => (profiles[profile] ? (override ?? profiles[profile].retention) : undefined);
}

/** Retention decisions for snapshot ids, each profile by its own policy. */
export function decideRetention(ids: readonly string[], policy: PolicyFor, suspects: ReadonlySet<string>, now: Date, partial: ReadonlySet<string> = new Set()): RetentionDecision[] {
  const byProfile = new Map<string, string[]>();
  for (const id of ids) {
    const profile = parseSnapshotId(id)!.profile;
    byProfile.set(profile, [...(byProfile.get(profile) ?? []), id]);
  }
  const decisions: RetentionDecision[] = [];
  for (const [profile, group] of byProfile) {
    const p = policy(profile);
    if (!p) {
      // A profile no longer in the rc file: keep its snapshots rather than guess.
      decisions.push(...group.map((id) => ({ id, time: parseSnapshotId(id)!.time, keep: true, reasons: [`profile ${profile} is not configured`] })));
      continue;
    }
    const candidate = (id: string) => ({ id, time: parseSnapshotId(id)!.time, ...(suspects.has(id) ? { suspect: true } : {}), ...(partial.has(id) ? { partial: true } : {}) });
    decisions.push(...applyRetention(group.map(candidate), p, now));
  }
  return decisions;
}

/**
 * The last check before anything is deleted: the plan removes nothing the plain policy keeps
 * (every snapshot treated as good), and never every snapshot. Either would be a bug in the
 * decisions above; deleting history is the one mistake a backup tool cannot take back.
 */
export function checkPrunePlan(repository: string, decisions: readonly RetentionDecision[], plain: readonly RetentionDecision[]): void {
  const removed = decisions.filter((d) => !d.keep);
  if (decisions.length > 0 && removed.length === decisions.length) {
    throw new BackupError('E_RETENTION', `${repository}: refusing to prune: the retention policy would delete every snapshot`, { details: { repository } });
  }
  const plainRemoves = new Set(plain.filter((d) => !d.keep).map((d) => d.id));
  const beyond = removed.filter((d) => !plainRemoves.has(d.id));
  if (beyond.length) {
    throw new BackupError('E_RETENTION', `${repository}: refusing to prune: ${beyond.map((d) => d.id).join(', ')} would be removed although the policy keeps it`, {
      details: { repository, ids: beyond.map((d) => d.id) },
    });
  }
}

export interface PruneOptions {
  policy: PolicyFor;
  /** The destination's own `retention`, for messages; undefined: per profile. */
  override: RetentionPolicy | undefined;
  /** Every suspect known (those of other repositories are ignored). */
  suspects: readonly SuspectSnapshot[];
  now: Date;
  dryRun: boolean;
  logger: Logger;
}

/**
 * The partial snapshots among `ids` (their manifests list failed sources). A manifest that cannot
 * be read counts as complete, as before partial snapshots existed: verify reports it.
 */
async function partialSnapshots(repo: Repository, ids: readonly string[]): Promise<Set<string>> {
  const partial = new Set<string>();
  for (const id of ids) {
    const manifest = await repo.readManifest(id).catch(() => undefined);
    if (manifest && isPartial(manifest)) partial.add(id);
  }
  return partial;
}

/** Decides and (unless a dry run) carries out the prune of one repository. */
export async function pruneRepository(repo: Repository, options: PruneOptions): Promise<PruneResult> {
  const { now, dryRun, logger } = options;
  const listing = await repo.listing();
  const held = new Set(listing.ids);
  const suspects = options.suspects.filter((s) => s.repository === repo.name && held.has(s.id));
  const decisions = decideRetention(listing.ids, options.policy, new Set(suspects.map((s) => s.id)), now, await partialSnapshots(repo, listing.ids));
  checkPrunePlan(repo.name, decisions, decideRetention(listing.ids, options.policy, new Set(), now));
  const kept = decisions.filter((d) => d.keep);
  const removed = decisions.filter((d) => !d.keep);
  const keptIds = new Set(kept.map((d) => d.id));
  const { incomplete, foreign } = await incompleteFolders(repo, listing, now);
  const policyText = options.override ? describePolicy(options.override) : 'per profile';

  const keptSuspects = suspects.filter((s) => keptIds.has(s.id));
  for (const s of keptSuspects) {
    logger.warn(`keeping suspect snapshot ${describeSuspect(s)}: it fills no retention slot; \`sutazai-backup forget ${s.id}${repo.name === 'backupRoot' ? '' : ` --from ${repo.name.replace(/^destinations\./, '')}`}\` deletes it`);
  }
  for (const f of foreign) {
    logger.warn(`${repo.name}: snapshots/${f.id}/ has no manifest and no marker of this tool (${f.objects} object(s)): not created by sutazai-backup, left alone`);
  }
  for (const d of removed) logger.info(`${dryRun ? 'would remove' : 'removing'} ${d.id} from ${repo.name} (${policyText})`);
  for (const i of incomplete) {
    if (i.removed) logger.info(`${dryRun ? 'would remove' : 'removing'} the incomplete snapshot ${i.id} from ${repo.name} (${i.state} since ${i.since})`);
    else logger.info(`${repo.name}: ${i.id} is incomplete (${i.state} since ${i.since}): removed once ${INCOMPLETE_GRACE_MS / 3600_000} h have passed`);
  }

  if (!dryRun) {
    for (const d of removed) await repo.deleteSnapshot(d.id, listing.objects.get(d.id), now);
    for (const i of incomplete) if (i.removed) await repo.deleteIncomplete(i.id, listing.objects.get(i.id)!);
    // A marker beside a manifest: an upload or deletion stopped after the point that counts.
    for (const d of kept) {
      if (listing.marked.has(d.id)) {
        await repo.removeMarker(d.id).catch((err) => logger.warn(`${repo.name}: could not remove the marker of ${d.id}: ${(err as Error).message}`));
      }
    }
  }
  const orphans = incomplete.filter((i) => i.removed).length;
  return { repository: repo.name, dryRun, policy: policyText, kept, removed, suspects: keptSuspects, incomplete, foreign, orphans };
}

/** The folders named like snapshots that hold no manifest: the tool's incomplete ones, and the rest. */
async function incompleteFolders(repo: Repository, listing: SnapshotListing, now: Date): Promise<{ incomplete: IncompleteSnapshot[]; foreign: ForeignFolder[] }> {
  const incomplete: IncompleteSnapshot[] = [];
  const foreign: ForeignFolder[] = [];
  for (const id of [...listing.objects.keys()].sort()) {
    const objects = listing.objects.get(id)!;
    if (listing.ids.includes(id) || !isSnapshotId(id)) continue;
    const marker = listing.marked.has(id) ? await repo.readMarker(id) : undefined;
    if (!marker) {
      foreign.push({ id, objects: objects.length, bytes: objects.reduce((n, o) => n + o.size, 0) });
      continue;
    }
    const age = now.getTime() - Date.parse(marker.since);
    incomplete.push({ id, objects: objects.length, state: marker.state, since: marker.since, removed: age >= INCOMPLETE_GRACE_MS });
  }
  return { incomplete, foreign };
}

/**
 * Folders under snapshots/ with neither manifest nor marker, for `status`: at backupRoot as they
 * are now (`listing`), at each configured destination as its last prune saw them.
 */
export function foreignFolders(records: readonly HistoryRecord[], listing: SnapshotListing | undefined, configured: (repository: string) => boolean): { repository: string; id: string }[] {
  const out: { repository: string; id: string }[] = [];
  for (const id of [...(listing?.objects.keys() ?? [])].sort()) {
    if (!listing!.ids.includes(id) && !listing!.marked.has(id)) out.push({ repository: 'backupRoot', id });
  }
  const lastPrune = new Map<string, string[]>();
  for (const r of records) if (r.kind === 'prune' && r.repository && r.repository !== 'backupRoot') lastPrune.set(r.repository, (r.foreign as string[] | undefined) ?? []);
  for (const [repository, ids] of lastPrune) if (configured(repository)) out.push(...ids.map((id) => ({ repository, id })));
  return out;
}

/** The history line of a prune that deleted (what `status` reads back). */
export function pruneRecord(result: PruneResult, startedAt: Date, finishedAt: Date): HistoryRecord {
  return {
    kind: 'prune',
    status: 'success',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    repository: result.repository,
    removed: result.removed.map((d) => d.id),
    incomplete: result.incomplete.filter((i) => i.removed).map((i) => i.id),
    suspects: result.suspects.map((s) => s.id),
    foreign: result.foreign.map((f) => f.id),
  };
}

export interface ForgetResult {
  repository: string;
  id: string;
  /** What its latest verification found, when it was a suspect. */
  suspect: SuspectSnapshot | null;
}

/**
 * Deletes one snapshot on the user's word: the full id only (no prefix, no `latest`), because the
 * deletion cannot be undone and a prefix typed a day later may name another snapshot.
 */
export async function forgetSnapshot(repo: Repository, id: string, options: { suspects: readonly SuspectSnapshot[]; now: Date; logger: Logger }): Promise<ForgetResult> {
  if (!isSnapshotId(id)) {
    throw new BackupError('E_USAGE', `forget needs a full snapshot id like 20261126T020000Z-daily-3f9a (not a prefix, not "latest"): "${id}" is not one (see \`sutazai-backup list\`)`);
  }
  const listing = await repo.listing();
  if (!listing.ids.includes(id)) {
    const folder = listing.objects.has(id) ? `: snapshots/${id}/ has no manifest (prune removes the tool's own incomplete snapshots after ${INCOMPLETE_GRACE_MS / 3600_000} h and leaves others alone)` : '';
    throw new BackupError('E_NOT_FOUND', `snapshot ${id} not found in ${repo.description}${folder}`);
  }
  const suspect = options.suspects.find((s) => s.repository === repo.name && s.id === id) ?? null;
  options.logger.info(`forgetting ${id} at ${repo.name}${suspect ? ` (suspect: ${suspect.kind}: ${suspectReason(suspect)})` : ''}`);
  await repo.deleteSnapshot(id, listing.objects.get(id), options.now);
  return { repository: repo.name, id, suspect };
}

import { BackupError } from '../errors.js';

/**
 * Which packs a prune deletes, repacks and keeps: restic 0.14's rules (cmd_prune.go,
 * decidePackAction), so that restic's own prune finds little to do after ours. A pack without
 * used blobs is deleted; one partly used, or mixing tree and data blobs, is a candidate for
 * repacking; candidates are repacked tree packs first, then by their unused share, until the
 * unused bytes left are within `maxUnused` of the used ones. Packs no index names are deleted
 * first; a needed pack that is missing, or whose size differs from the index, stops the prune.
 */

export interface PackUsage {
  /** 'mixed' for a pack holding both blob types (restic 0.14 still reads old ones). */
  type: 'data' | 'tree' | 'mixed';
  usedBlobs: number;
  unusedBlobs: number;
  /** Bytes of used blobs plus the header (restic counts the header as used). */
  usedSize: number;
  unusedSize: number;
  /** Whether a blob is stored uncompressed. */
  uncompressed: boolean;
}

export interface PrunePlan {
  /** Stored packs no index names (left by interrupted runs): deleted first. */
  unreferenced: string[];
  /** Packs without used blobs. */
  remove: Set<string>;
  repack: Set<string>;
  /** Packs the index names that are missing and hold nothing used: left out of the new index. */
  ignore: Set<string>;
  stats: PruneStats;
}

export interface PruneStats {
  usedBytes: number;
  unusedBytes: number;
  unreferencedBytes: number;
  removeBytes: number;
  repackBytes: number;
  /** Unused bytes the repacking drops. */
  repackFreedBytes: number;
  keptPacks: number;
}

export interface PlanOptions {
  /** The unused share tolerated after the prune, in percent of the total (restic's --max-unused, default 5). */
  maxUnusedPercent: number;
  /** The repository's target pack size: packs under 1/25 of it are "small" (restic's rule). */
  packSize: number;
  /** Repository version: version 2 repacks tree packs stored uncompressed. */
  version: number;
}

interface Candidate extends PackUsage {
  id: string;
}

export function planPrune(usage: Map<string, PackUsage>, stored: Map<string, number>, options: PlanOptions): PrunePlan {
  const pct = options.maxUnusedPercent;
  if (!(pct >= 0 && pct < 100)) throw new BackupError('E_USAGE', `the unused share to tolerate must be 0..99.9%, not ${pct}%`);
  const stats: PruneStats = { usedBytes: 0, unusedBytes: 0, unreferencedBytes: 0, removeBytes: 0, repackBytes: 0, repackFreedBytes: 0, keptPacks: 0 };
  for (const u of usage.values()) {
    stats.usedBytes += u.usedSize;
    stats.unusedBytes += u.unusedSize;
  }
  const plan: PrunePlan = { unreferenced: [], remove: new Set(), repack: new Set(), ignore: new Set(), stats };
  const smallPack = Math.floor(options.packSize / 25);
  const candidates: Candidate[] = [];
  const small: Candidate[] = [];
  for (const [id, size] of stored) {
    const u = usage.get(id);
    if (!u) {
      plan.unreferenced.push(id);
      stats.unreferencedBytes += size;
      continue;
    }
    if (u.usedBlobs > 0 && u.usedSize + u.unusedSize !== size) {
      throw new BackupError('E_INTEGRITY', `data/${id.slice(0, 2)}/${id}: is ${size} bytes, the index implies ${u.usedSize + u.unusedSize}; prune refuses (run check)`, {
        details: { object: `data/${id.slice(0, 2)}/${id}` },
      });
    }
    const mustCompress = options.version >= 2 && u.type === 'tree' && u.uncompressed;
    if (u.usedBlobs === 0) {
      plan.remove.add(id);
      stats.removeBytes += u.unusedSize;
    } else if (u.unusedBlobs === 0 && u.type !== 'mixed' && !mustCompress) {
      if (size >= smallPack) stats.keptPacks++;
      else small.push({ id, ...u, uncompressed: mustCompress });
    } else candidates.push({ id, ...u, uncompressed: mustCompress });
  }
  const missingNeeded: string[] = [];
  for (const [id, u] of usage) {
    if (stored.has(id)) continue;
    if (u.usedBlobs > 0) missingNeeded.push(id);
    else {
      plan.ignore.add(id);
      stats.removeBytes += u.unusedSize;
    }
  }
  if (missingNeeded.length) {
    throw new BackupError('E_INTEGRITY', `the index names ${missingNeeded.length} needed pack(s) that are missing (${missingNeeded.slice(0, 3).map((id) => `data/${id.slice(0, 2)}/${id}`).join(', ')}); prune refuses (run check)`);
  }
  // Fewer than ten small packs are not worth it (and one would be repacked on every prune).
  if (small.length < 10) stats.keptPacks += small.length;
  else candidates.push(...small);
  sortCandidates(candidates, smallPack);
  const maxUnusedAfter = (pct / (100 - pct)) * stats.usedBytes;
  for (const p of candidates) {
    const unusedAfter = stats.unusedBytes - stats.removeBytes - stats.repackFreedBytes;
    const largeEnough = p.usedSize + p.unusedSize >= smallPack;
    if (p.type === 'data' && !p.uncompressed && unusedAfter < maxUnusedAfter && largeEnough) {
      stats.keptPacks++;
      continue;
    }
    plan.repack.add(p.id);
    stats.repackBytes += p.usedSize + p.unusedSize;
    stats.repackFreedBytes += p.unusedSize;
  }
  return plan;
}

/** Tree and mixed packs first, then small packs, then by unused/used, highest first (restic's order). */
function sortCandidates(candidates: Candidate[], smallPack: number): void {
  const rank = (p: Candidate) => (p.type !== 'data' ? 0 : p.usedSize + p.unusedSize < smallPack ? 1 : 2);
  candidates.sort((a, b) => rank(a) - rank(b) || b.unusedSize * a.usedSize - a.unusedSize * b.usedSize);
}

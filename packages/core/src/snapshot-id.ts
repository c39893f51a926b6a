import { randomBytes } from 'node:crypto';

const ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([A-Za-z0-9][A-Za-z0-9_-]*)-([0-9a-f]{4,16})$/;

/**
 * A snapshot id that sorts by time: `20261126T020000Z-daily-3f9a`. The suffix carries the
 * milliseconds (times 16, plus a random nibble), so two snapshots of one profile taken in the
 * same second still sort in the order they were taken.
 */
export function makeSnapshotId(time: Date, profile: string): string {
  const stamp = stampOf(time);
  const suffix = (time.getUTCMilliseconds() * 16 + (randomBytes(1)[0]! & 0xf)).toString(16).padStart(4, '0');
  return `${stamp}-${profile}-${suffix}`;
}

export interface ParsedSnapshotId {
  time: Date;
  profile: string;
}

export function parseSnapshotId(id: string): ParsedSnapshotId | undefined {
  const m = ID.exec(id);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, profile] = m;
  const time = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
  // Reject impossible times (month 13, day 99, second 60) and years Date reads as 19xx, instead
  // of letting Date roll them over: the time must write back as the same stamp.
  if (!id.startsWith(stampOf(time))) return undefined;
  return { time, profile: profile! };
}

/** `20261126T020000Z`: the time to the second, UTC. */
function stampOf(time: Date): string {
  return time.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function isSnapshotId(id: string): boolean {
  return parseSnapshotId(id) !== undefined;
}

/** Ids compare as strings: the timestamp comes first and is fixed-width. */
export function compareSnapshotIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

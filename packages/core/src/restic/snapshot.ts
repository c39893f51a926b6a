import os from 'node:os';
import { BackupError } from '../errors.js';
import { formatGoTime, parseGoTime } from './go-json.js';

/**
 * A restic snapshot file's JSON (internal/restic/snapshot.go), fields in restic's order. Stored
 * through JsonFileStore (encrypted, so its exact bytes do not matter, unlike trees').
 */
export interface ResticSnapshot {
  time: string;
  parent?: string;
  tree: string;
  paths: string[];
  hostname?: string;
  username?: string;
  uid?: number;
  gid?: number;
  excludes?: string[];
  tags?: string[];
  original?: string;
  program_version?: string;
}

export interface NewSnapshot {
  tree: string;
  paths: string[];
  /** Nanoseconds since the epoch; default now. */
  timeNs?: bigint;
  parent?: string;
  tags?: string[];
  hostname?: string;
  programVersion?: string;
}

/** Nanoseconds since the epoch now, as precise as the clock gives. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
}

/** A snapshot as restic writes it: host and user of this process, paths sorted, empty fields left out. */
export function newSnapshot(spec: NewSnapshot): ResticSnapshot {
  const user = os.userInfo();
  const snapshot: ResticSnapshot = {
    time: formatGoTime(spec.timeNs ?? nowNs()),
    ...(spec.parent ? { parent: spec.parent } : {}),
    tree: spec.tree,
    // restic sorts a snapshot's paths, and groups snapshots by them when it looks for a parent.
    paths: [...spec.paths].sort(),
    hostname: spec.hostname ?? os.hostname(),
    username: user.username,
  };
  if (user.uid) snapshot.uid = user.uid;
  if (user.gid) snapshot.gid = user.gid;
  if (spec.tags?.length) snapshot.tags = spec.tags;
  if (spec.programVersion) snapshot.program_version = spec.programVersion;
  return snapshot;
}

const ID = /^[0-9a-f]{64}$/;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Checks a snapshot file's JSON (read from a repository anyone may have written into). */
export function checkSnapshot(value: unknown, label: string): ResticSnapshot {
  const fail = (why: string): never => {
    throw new BackupError('E_INTEGRITY', `restic snapshot ${label}: ${why}`);
  };
  if (typeof value !== 'object' || value === null) return fail('not a JSON object');
  const s = value as Record<string, unknown>;
  if (typeof s.tree !== 'string' || !ID.test(s.tree)) fail('no valid "tree" id');
  if (typeof s.time !== 'string') fail('no "time"');
  try {
    parseGoTime(s.time as string);
  } catch (err) {
    fail((err as Error).message);
  }
  if (s.paths !== undefined && s.paths !== null && !isStrings(s.paths)) fail('"paths" is not a list of strings');
  if (s.tags !== undefined && s.tags !== null && !isStrings(s.tags)) fail('"tags" is not a list of strings');
  if (s.parent !== undefined && (typeof s.parent !== 'string' || !ID.test(s.parent))) fail('"parent" is not a snapshot id');
  return { ...(s as unknown as ResticSnapshot), paths: (s.paths as string[] | null) ?? [] };
}

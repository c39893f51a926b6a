import path from 'node:path';
import { z } from './vendor/zod.js';
import { BackupError } from './errors.js';
import { isSnapshotId } from './snapshot-id.js';

export const MANIFEST_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

export const compressionSchema = z.enum(['zstd', 'gzip', 'none']);
export type Compression = z.infer<typeof compressionSchema>;

const encryptionInfoSchema = z
  .object({
    /** The encryption plugin's name, e.g. `gpg`. */
    method: z.string(),
  })
  .passthrough();
export type EncryptionInfo = z.infer<typeof encryptionInfoSchema>;

/*
 * The grammar of every name a repository hands back that the tool turns into a path: read from
 * a manifest (or a destination's listing), a name is checked here before it touches the file
 * system, so a planted `../../x` fails as damaged data instead of writing somewhere else.
 */

/** Source and profile names: what the rc file accepts as a key. */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const PLAIN_NAME_RULE = 'a plain name (letters, digits, "-", "_")';
// One path component: no separator, no NUL or other control character, not "." or "..".
const FILE_NAME = /^(?!\.\.?$)[^/\\\u0000-\u001f\u007f]{1,255}$/;
const FILE_NAME_RULE = 'a plain file name (one path component: no "/", "\\", control characters, "." or "..")';

/** Whether a source name is a plain name (restore makes `DIR/<source>` from it). */
export function isSourceName(name: string): boolean {
  return PLAIN_NAME.test(name);
}

/** Whether a name is one path component the tool may join onto a folder (an artifact's `file` or `filename`). */
export function isPlainFileName(name: string): boolean {
  return FILE_NAME.test(name) && Buffer.byteLength(name) <= 255;
}

/** Joins a name read from a repository onto a folder, refusing anything but one plain component. */
export function joinPlainName(dir: string, name: string, what: string): string {
  if (!isPlainFileName(name)) throw new BackupError('E_INTEGRITY', `${what}: refused file name ${JSON.stringify(name)}: not ${FILE_NAME_RULE}`);
  return path.join(dir, name);
}

/**
 * Joins a relative path read from a repository (a path in a manifest's meta) onto a folder,
 * refusing one that leads out of it.
 */
export function joinInside(base: string, rel: string, what: string): string {
  const joined = path.join(base, rel);
  const back = path.relative(base, joined);
  if (rel.includes('\0') || back === '..' || back.startsWith(`..${path.sep}`) || path.isAbsolute(back)) {
    throw new BackupError('E_INTEGRITY', `${what}: refused path ${JSON.stringify(rel)}: it leads outside ${base}`);
  }
  return joined;
}

const plainFileName = z.string().refine(isPlainFileName, FILE_NAME_RULE);

export const artifactRecordSchema = z
  .object({
    source: z.string().regex(PLAIN_NAME, `a plain source name (letters, digits, "-", "_")`),
    plugin: z.string(),
    /** The file name inside the snapshot folder, e.g. `configs.tar.zst`. */
    file: plainFileName.refine((f) => f !== MANIFEST_FILE, `not ${MANIFEST_FILE}`),
    /** `tree`: a tar archive restored as a folder; `file`: a single file restored by `filename`. */
    type: z.enum(['tree', 'file']),
    filename: plainFileName.optional(),
    /** Size and sha256 of the stored bytes (compressed and encrypted). */
    bytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** Size of the data before compression. */
    rawBytes: z.number().int().nonnegative(),
    compression: compressionSchema,
    encryption: encryptionInfoSchema.nullable(),
    meta: z.record(z.string(), z.unknown()),
  })
  .passthrough();
export type ArtifactRecord = z.infer<typeof artifactRecordSchema>;

/** A source of the profile that failed in the run that made a partial snapshot: none of its artifacts is in it. */
export const failedSourceSchema = z
  .object({
    source: z.string().regex(PLAIN_NAME, `a plain source name (letters, digits, "-", "_")`),
    plugin: z.string().optional(),
    stage: z.string(),
    code: z.string(),
    message: z.string(),
  })
  .passthrough();
export type FailedSource = z.infer<typeof failedSourceSchema>;

export const manifestSchema = z
  .object({
    formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
    id: z.string().refine(isSnapshotId, 'a snapshot id like 20261126T020000Z-daily-3f9a'),
    profile: z.string().regex(PLAIN_NAME, PLAIN_NAME_RULE),
    host: z.string(),
    startedAt: z.string(),
    finishedAt: z.string(),
    tool: z.object({ name: z.string(), version: z.string() }),
    artifacts: z.array(artifactRecordSchema),
    /** Present on a partial snapshot only: the sources that failed, so it holds none of their data. */
    failedSources: z.array(failedSourceSchema).optional(),
  })
  .passthrough();
export type Manifest = z.infer<typeof manifestSchema>;

export function serializeManifest(manifest: Manifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}

/** Parses and checks a manifest; `where` names it in errors (a destination and key). */
export function parseManifest(text: string, where: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BackupError('E_INTEGRITY', `${where}: manifest is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const result = manifestSchema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const value = valueAt(data, issue.path);
    const shown = typeof value === 'string' ? ` (${JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}...` : value)})` : '';
    throw new BackupError('E_INTEGRITY', `${where}: manifest is not valid: ${issue.path.join('.') || '(root)'}: ${issue.message}${shown}`, {
      details: { field: issue.path.join('.') },
    });
  }
  return result.data;
}

function valueAt(data: unknown, at: readonly PropertyKey[]): unknown {
  let value = data;
  for (const key of at) value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}

/**
 * JSON with object keys sorted and no whitespace: the same bytes for the same content however
 * the manifest was read and written again (replication, another tool).
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * What an authenticator (a MAC, a signature) covers: the canonical JSON of the whole manifest,
 * its id included, without the top-level fields named (the authenticator's own field).
 */
export function manifestAuthenticatedBytes(manifest: Manifest, without: readonly string[]): Buffer {
  const copy: Record<string, unknown> = { ...manifest };
  for (const field of without) delete copy[field];
  return Buffer.from(canonicalJson(copy), 'utf8');
}

/** The sources a partial snapshot lacks (empty for a complete one). */
export function failedSources(manifest: Pick<Manifest, 'failedSources'>): FailedSource[] {
  return manifest.failedSources ?? [];
}

/** Whether a snapshot is partial: some of its profile's sources failed and are not in it. */
export function isPartial(manifest: Pick<Manifest, 'failedSources'>): boolean {
  return failedSources(manifest).length > 0;
}

/** The total stored size of a snapshot. */
export function manifestBytes(manifest: Manifest): number {
  return manifest.artifacts.reduce((sum, a) => sum + a.bytes, 0);
}

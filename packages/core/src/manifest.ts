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

const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** Whether a source name is a plain name (restore makes `DIR/<source>` from it). */
export function isSourceName(name: string): boolean {
  return SOURCE_NAME.test(name);
}

export const artifactRecordSchema = z
  .object({
    source: z.string().regex(SOURCE_NAME, 'a plain source name (letters, digits, "-", "_")'),
    plugin: z.string(),
    /** The file name inside the snapshot folder, e.g. `configs.tar.zst`. */
    file: z
      .string()
      .regex(/^[^/\\]+$/, 'a file name without folders')
      .refine((f) => f !== '.' && f !== '..', 'a file name without folders'),
    /** `tree`: a tar archive restored as a folder; `file`: a single file restored by `filename`. */
    type: z.enum(['tree', 'file']),
    filename: z.string().optional(),
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

export const manifestSchema = z
  .object({
    formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
    id: z.string().refine(isSnapshotId, 'a snapshot id like 20261126T020000Z-daily-3f9a'),
    profile: z.string(),
    host: z.string(),
    startedAt: z.string(),
    finishedAt: z.string(),
    tool: z.object({ name: z.string(), version: z.string() }),
    artifacts: z.array(artifactRecordSchema),
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
    throw new BackupError(
      'E_INTEGRITY',
      `${where}: manifest is not valid: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
  }
  return result.data;
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

/** The total stored size of a snapshot. */
export function manifestBytes(manifest: Manifest): number {
  return manifest.artifacts.reduce((sum, a) => sum + a.bytes, 0);
}

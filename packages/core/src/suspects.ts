/**
 * Suspect snapshots: those whose latest verification failed. A failed verify is a diagnosis, not
 * a verdict: a mistyped passphrase fails every MAC, a dropped connection fails every read, and a
 * flipped byte in a manifest looks like an altered snapshot. So a suspect is kept (retention does
 * not delete it for the failure), reported by `status` with what kind of failure it was, and
 * deleted only by `sutazai-backup forget`.
 */
import { isBackupError } from './errors.js';
import type { HistoryRecord } from './history.js';

export const VERIFY_FAILURE_KINDS = ['authentication', 'read', 'manifest', 'integrity', 'unknown'] as const;
/**
 * - `authentication`: the manifest's MAC or signature did not check, or an artifact could not be
 *   decrypted with the configured key: a wrong key or passphrase, or an altered snapshot.
 * - `read`: the repository could not be read (I/O, connection, a missing object): maybe transient.
 * - `manifest`: the manifest is not a valid manifest of this snapshot.
 * - `integrity`: an artifact's stored bytes differ from what its manifest records, or do not
 *   decode, or a source's check of them failed.
 * - `unknown`: recorded by a version that did not classify failures.
 */
export type VerifyFailureKind = (typeof VERIFY_FAILURE_KINDS)[number];

export interface VerifyFailure {
  kind: VerifyFailureKind;
  error: string;
}

/** A suspect snapshot at one repository (backupRoot or `destinations.<name>`). */
export interface SuspectSnapshot extends VerifyFailure {
  id: string;
  repository: string;
  /** When the verification that failed finished. */
  at: string;
}

/** The kind of a failure while reading a manifest: `authenticating` when the read succeeded and a plugin refused it. */
export function manifestFailureKind(err: unknown, authenticating: boolean): VerifyFailureKind {
  if (authenticating) return 'authentication';
  return isBackupError(err) && err.code === 'E_INTEGRITY' ? 'manifest' : 'read';
}

/**
 * The kind of a failure while verifying an artifact, from the error thrown (`raw`) and the one
 * `ArtifactReader.explain` made of it: stored bytes that differ from the manifest's size or
 * sha256 are `integrity`; an I/O or connection error anywhere in the chain of causes is `read`
 * (a decoder that could not read its input says "cannot be decoded", but the data was never seen).
 */
export function artifactFailureKind(raw: unknown, explained: unknown): VerifyFailureKind {
  if (isBackupError(explained) && explained.code === 'E_INTEGRITY' && storedBytesDiffer(explained.details)) return 'integrity';
  for (let e: unknown = raw, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (isBackupError(e)) {
      // The decryption's own configuration errors: no private key for the recipients, a wrong key passphrase.
      if (e.code === 'E_CONFIG') return 'authentication';
      if (e.code === 'E_DESTINATION' || e.code === 'E_NOT_FOUND' || e.code === 'E_AUTH') return 'read';
      continue;
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && ERRNO.test(code)) return 'read';
  }
  return 'integrity';
}

/** System error codes (EIO, EISDIR, ECONNRESET), not the project's (E_INTEGRITY). */
const ERRNO = /^E[A-Z0-9]+$/;

function storedBytesDiffer(details: Record<string, unknown>): boolean {
  return 'expectedBytes' in details || ('expected' in details && 'actual' in details);
}

/** The history's verify records carry, per snapshot, `ok` and (since 13) `failure`. */
interface VerifiedSnapshot {
  id: string;
  ok: boolean;
  failure?: Partial<VerifyFailure>;
}

/**
 * The suspects, from the history: at each repository, the snapshots whose latest verification
 * failed and that no prune or forget removed since.
 */
export function suspectSnapshots(records: readonly HistoryRecord[], defaultRepository = 'backupRoot'): SuspectSnapshot[] {
  const state = new Map<string, SuspectSnapshot>();
  const key = (repository: string, id: string) => `${repository}\0${id}`;
  for (const r of records) {
    const repository = r.repository ?? defaultRepository;
    if (r.kind === 'verify') {
      for (const s of (r.snapshots as VerifiedSnapshot[] | undefined) ?? []) {
        if (s.ok) {
          state.delete(key(repository, s.id));
          continue;
        }
        const kind = VERIFY_FAILURE_KINDS.includes(s.failure?.kind as VerifyFailureKind) ? (s.failure!.kind as VerifyFailureKind) : 'unknown';
        state.set(key(repository, s.id), { id: s.id, repository, kind, error: s.failure?.error ?? 'failed verification', at: r.finishedAt });
      }
    } else if ((r.kind === 'prune' || r.kind === 'forget') && r.status === 'success') {
      for (const id of (r.removed as string[] | undefined) ?? []) state.delete(key(repository, id));
    }
  }
  return [...state.values()];
}

/** One line for a suspect: `<id> at <repository> (<kind>: <error>)`, without repeating the id and repository. */
export function describeSuspect(s: SuspectSnapshot): string {
  return `${s.id} at ${s.repository} (${s.kind}: ${suspectReason(s)})`;
}

/** The error of a suspect without the `<repository>: snapshot <id>: ` its message starts with. */
export function suspectReason(s: SuspectSnapshot): string {
  let text = s.error;
  for (const prefix of [`${s.repository}: `, `snapshot ${s.id}: `]) if (text.startsWith(prefix)) text = text.slice(prefix.length);
  return text;
}

/**
 * The `verification` health condition: failing while any suspect is held, naming which, where
 * and why; otherwise the latest verification at each repository.
 */
export function verificationCheck(records: readonly HistoryRecord[], suspects: readonly SuspectSnapshot[]): { name: string; ok: boolean; detail: string } {
  if (suspects.length) {
    const shown = suspects.slice(0, 5).map((s) => `${s.id} at ${s.repository} (${s.kind})`);
    const more = suspects.length > shown.length ? `; and ${suspects.length - shown.length} more` : '';
    return {
      name: 'verification',
      ok: false,
      detail: `${suspects.length} suspect snapshot(s) failed verification (kept; \`sutazai-backup forget <ID> [--from DEST]\` deletes one): ${shown.join('; ')}${more}`,
    };
  }
  const last = new Map<string, HistoryRecord>();
  for (const r of records) if (r.kind === 'verify') last.set(r.repository ?? 'backupRoot', r);
  if (!last.size) return { name: 'verification', ok: true, detail: 'no verification recorded yet' };
  const parts = [...last].map(([repository, r]) => `${repository}: ${((r.snapshots as unknown[] | undefined) ?? []).length} snapshot(s) verified at ${r.finishedAt}`);
  return { name: 'verification', ok: true, detail: parts.join('; ') };
}

import { describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import type { HistoryRecord } from '../src/history.js';
import { artifactFailureKind, manifestFailureKind, suspectSnapshots, verificationCheck } from '../src/suspects.js';

const verify = (repository: string, finishedAt: string, snapshots: unknown[]): HistoryRecord => ({
  kind: 'verify',
  status: 'failed',
  startedAt: finishedAt,
  finishedAt,
  repository,
  snapshots,
});

describe('suspectSnapshots', () => {
  it('follows the latest verification of each snapshot at each repository, until a prune or forget removes it', () => {
    const records: HistoryRecord[] = [
      verify('backupRoot', 't1', [
        { id: 'a', ok: false, failure: { kind: 'authentication', error: 'HMAC' } },
        { id: 'b', ok: false, failure: { kind: 'read', error: 'EIO' } },
        { id: 'c', ok: false },
      ]),
      verify('destinations.drive', 't2', [{ id: 'a', ok: false, failure: { kind: 'integrity', error: 'sha256 mismatch' } }]),
      verify('backupRoot', 't3', [{ id: 'b', ok: true }]),
      { kind: 'prune', status: 'success', startedAt: 't4', finishedAt: 't4', repository: 'backupRoot', removed: ['c'] },
      { kind: 'forget', status: 'success', startedAt: 't5', finishedAt: 't5', repository: 'destinations.offsite', removed: ['a'] },
    ];
    expect(suspectSnapshots(records)).toEqual([
      { id: 'a', repository: 'backupRoot', kind: 'authentication', error: 'HMAC', at: 't1' },
      { id: 'a', repository: 'destinations.drive', kind: 'integrity', error: 'sha256 mismatch', at: 't2' },
    ]);
    const check = verificationCheck(records, suspectSnapshots(records));
    expect(check).toMatchObject({ name: 'verification', ok: false });
    expect(check.detail).toContain('2 suspect snapshot(s) failed verification');
    expect(check.detail).toContain('a at destinations.drive (integrity)');
  });

  it('reads records written before failures were classified as kind unknown', () => {
    expect(suspectSnapshots([verify('backupRoot', 't1', [{ id: 'x', ok: false }])])).toEqual([
      { id: 'x', repository: 'backupRoot', kind: 'unknown', error: 'failed verification', at: 't1' },
    ]);
  });
});

describe('failure kinds', () => {
  it('tells a damaged manifest from a read error and from a failed authentication', () => {
    expect(manifestFailureKind(new BackupError('E_INTEGRITY', 'manifest is not valid JSON'), false)).toBe('manifest');
    expect(manifestFailureKind(new BackupError('E_DESTINATION', 'ECONNRESET'), false)).toBe('read');
    expect(manifestFailureKind(new BackupError('E_INTEGRITY', 'its HMAC does not match'), true)).toBe('authentication');
  });

  it('an I/O error under a decoder\'s complaint is a read error; stored bytes that differ are integrity', () => {
    const eisdir = Object.assign(new Error('EISDIR: illegal operation on a directory, read'), { code: 'EISDIR' });
    const decoded = new BackupError('E_INTEGRITY', 'x: cannot be decoded: EISDIR', { cause: eisdir });
    expect(artifactFailureKind(eisdir, decoded)).toBe('read');
    expect(artifactFailureKind(new BackupError('E_DESTINATION', 'drive: reading x: timeout'), decoded)).toBe('read');
    const mismatch = new BackupError('E_INTEGRITY', 'sha256 mismatch', { details: { expected: 'a', actual: 'b' } });
    expect(artifactFailureKind(eisdir, mismatch)).toBe('integrity');
    expect(artifactFailureKind(mismatch, mismatch)).toBe('integrity');
    const undecodable = new BackupError('E_INTEGRITY', 'x: cannot be decoded: data corruption');
    expect(artifactFailureKind(undecodable, undecodable)).toBe('integrity');
    const noKey = new BackupError('E_CONFIG', 'cannot decrypt: no secret key');
    expect(artifactFailureKind(noKey, noKey)).toBe('authentication');
  });
});

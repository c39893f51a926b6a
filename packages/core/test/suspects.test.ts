import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import type { HistoryRecord } from '../src/history.js';
import { StoredBytesCheck } from '../src/pipeline/stored-bytes.js';
import { artifactFailureKind, describeSuspect, manifestFailureKind, suspectReason, suspectSnapshots, verificationCheck, type SuspectSnapshot } from '../src/suspects.js';

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

describe('what the history says after verify, prune and forget', () => {
  const record = (kind: HistoryRecord['kind'], status: HistoryRecord['status'], extra: Record<string, unknown>): HistoryRecord => ({ kind, status, startedAt: 't', finishedAt: 't9', ...extra });

  it('only a successful prune or forget at the same repository clears a suspect', () => {
    const failed = (id: string) => ({ id, ok: false, failure: { kind: 'read', error: 'EIO' } });
    const records: HistoryRecord[] = [
      // Written before records named their repository: backupRoot's.
      record('verify', 'failed', { snapshots: [failed('a'), failed('b'), failed('c'), failed('d'), failed('e')] }),
      record('verify', 'success', {}),
      record('prune', 'failed', { repository: 'backupRoot', removed: ['a'] }),
      record('run', 'success', { repository: 'backupRoot', removed: ['b'] }),
      record('forget', 'success', { repository: 'backupRoot', removed: ['c'] }),
      record('prune', 'success', { repository: 'backupRoot', removed: ['d'] }),
      record('prune', 'success', { repository: 'backupRoot' }),
    ];
    expect(suspectSnapshots(records).map((s) => [s.id, s.repository, s.at])).toEqual([
      ['a', 'backupRoot', 't9'],
      ['b', 'backupRoot', 't9'],
      ['e', 'backupRoot', 't9'],
    ]);
  });
});

describe('how a suspect is shown', () => {
  const s: SuspectSnapshot = { id: '20261126T020000Z-daily-3f9a', repository: 'destinations.offsite', kind: 'integrity', error: '', at: 't' };

  it('without repeating the repository and id its error starts with', () => {
    const error = 'destinations.offsite: snapshot 20261126T020000Z-daily-3f9a: db.dump: sha256 mismatch';
    expect(describeSuspect({ ...s, error })).toBe('20261126T020000Z-daily-3f9a at destinations.offsite (integrity: db.dump: sha256 mismatch)');
    expect(suspectReason({ ...s, error: 'snapshot 20261126T020000Z-daily-3f9a: manifest is not valid JSON' })).toBe('manifest is not valid JSON');
    // Only at the start: the same words later in the message stay.
    expect(suspectReason({ ...s, error: 'EIO reading destinations.offsite: snapshot 20261126T020000Z-daily-3f9a: ' })).toBe('EIO reading destinations.offsite: snapshot 20261126T020000Z-daily-3f9a: ');
  });

  it('status names at most five suspects, then how many more', () => {
    const seven = Array.from({ length: 7 }, (_, i) => ({ ...s, id: `s${i}` }));
    const check = verificationCheck([], seven);
    expect(check).toEqual({
      name: 'verification',
      ok: false,
      detail:
        '7 suspect snapshot(s) failed verification (kept; `sutazai-backup forget <ID> [--from DEST]` deletes one): ' +
        's0 at destinations.offsite (integrity); s1 at destinations.offsite (integrity); s2 at destinations.offsite (integrity); s3 at destinations.offsite (integrity); s4 at destinations.offsite (integrity); and 2 more',
    });
    expect(verificationCheck([], seven.slice(0, 5)).detail).toMatch(/s4 at destinations\.offsite \(integrity\)$/);
  });

  it('without suspects, status shows the latest verification at each repository', () => {
    expect(verificationCheck([], [])).toEqual({ name: 'verification', ok: true, detail: 'no verification recorded yet' });
    const records: HistoryRecord[] = [
      verify('backupRoot', 't1', [{ id: 'a', ok: true }]),
      { kind: 'verify', status: 'success', startedAt: 't2', finishedAt: 't2' },
      verify('destinations.drive', 't3', [{ id: 'a', ok: true }, { id: 'b', ok: true }]),
      { kind: 'prune', status: 'success', startedAt: 't4', finishedAt: 't4', repository: 'destinations.nas' },
      verify('backupRoot', 't5', [{ id: 'a', ok: true }, { id: 'b', ok: true }, { id: 'c', ok: true }]),
    ];
    expect(verificationCheck(records, [])).toEqual({
      name: 'verification',
      ok: true,
      detail: 'backupRoot: 3 snapshot(s) verified at t5; destinations.drive: 2 snapshot(s) verified at t3',
    });
  });
});

describe('failure kinds of real errors', () => {
  const stored = (expected: { bytes: number; sha256: string }, data: Buffer) => {
    const check = new StoredBytesCheck(expected, 'backupRoot: 20261126T020000Z-daily-3f9a/db.dump');
    try {
      check.update(data);
      check.end();
    } catch (err) {
      return err;
    }
    throw new Error('the check passed');
  };
  const data = Buffer.from('SELECT 1;\n');
  const sha256 = createHash('sha256').update(data).digest('hex');

  it('stored bytes that differ are integrity, even when the read that found them also failed', () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    for (const explained of [stored({ bytes: 20, sha256 }, data), stored({ bytes: 5, sha256 }, data), stored({ bytes: data.length, sha256: '0'.repeat(64) }, data)]) {
      expect(artifactFailureKind(reset, explained), (explained as Error).message).toBe('integrity');
    }
  });

  it('a missing object or a refused login anywhere in the causes is a read error', () => {
    const undecodable = new BackupError('E_INTEGRITY', 'x: cannot be decoded');
    for (const code of ['E_NOT_FOUND', 'E_AUTH', 'E_DESTINATION'] as const) {
      const wrapped = new Error('decode failed', { cause: new BackupError(code, 'offsite: get failed') });
      expect(artifactFailureKind(wrapped, undecodable), code).toBe('read');
    }
  });

  it("a decoder's own errors are integrity: corrupt gzip, a failed decryption", () => {
    const undecodable = new BackupError('E_INTEGRITY', 'x: cannot be decoded');
    const gzip = (() => {
      try {
        gunzipSync(Buffer.from('1f8b0800000000000003ffffffff', 'hex'));
      } catch (err) {
        return err as NodeJS.ErrnoException;
      }
    })();
    expect(gzip?.code).toBe('Z_DATA_ERROR');
    expect(artifactFailureKind(gzip, undecodable)).toBe('integrity');
    const badDecrypt = (() => {
      const cipher = createCipheriv('aes-256-cbc', Buffer.alloc(32, 1), Buffer.alloc(16));
      const sealed = Buffer.concat([cipher.update(data), cipher.final()]);
      const decipher = createDecipheriv('aes-256-cbc', Buffer.alloc(32, 2), Buffer.alloc(16));
      try {
        Buffer.concat([decipher.update(sealed), decipher.final()]);
      } catch (err) {
        return err as NodeJS.ErrnoException;
      }
    })();
    expect(badDecrypt?.code).toMatch(/^ERR_OSSL_/);
    expect(artifactFailureKind(badDecrypt, undecodable)).toBe('integrity');
    expect(artifactFailureKind(new Error('unexpected end of data'), undecodable)).toBe('integrity');
  });

  it('the chain of causes is followed 8 deep, and a cycle ends', () => {
    const chain = (depth: number) => {
      let e: Error = Object.assign(new Error('EIO'), { code: 'EIO' });
      for (let i = 0; i < depth; i++) e = new Error(`wrapped ${i}`, { cause: e });
      return e;
    };
    const undecodable = new BackupError('E_INTEGRITY', 'x: cannot be decoded');
    expect(artifactFailureKind(chain(7), undecodable)).toBe('read');
    expect(artifactFailureKind(chain(8), undecodable)).toBe('integrity');
    const cyclic = new Error('a') as Error & { cause?: unknown };
    cyclic.cause = new Error('b', { cause: cyclic });
    expect(artifactFailureKind(cyclic, undecodable)).toBe('integrity');
  });
});

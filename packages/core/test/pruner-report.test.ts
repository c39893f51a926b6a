/**
 * What prune and forget tell the user, and what they ask of the destination: the log lines of a
 * dry run and of the real one, the history record `status` reads back, the folders `status`
 * reports as foreign, and the refusals as `--json` prints them. Over real folders.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import type { HistoryRecord } from '../src/history.js';
import { checkPrunePlan, decideRetention, foreignFolders, forgetSnapshot, policyFor, pruneRecord, pruneRepository } from '../src/pruner.js';
import { MARKER_FILE, Repository } from '../src/repository.js';
import type { SuspectSnapshot } from '../src/suspects.js';
import { capturingLogger, RecordingDestination, writeFolder } from './helpers/repo-fixtures.js';

const now = new Date('2026-11-26T12:00:00Z');
const HOUR = 3_600_000;
const ids = ['20261123T020000Z-daily-0001', '20261124T020000Z-daily-0002', '20261125T020000Z-daily-0003', '20261126T020000Z-daily-0004'];
const foreign = '20261101T000000Z-daily-abcd';
const old = '20261125T000000Z-daily-0006';
const young = '20261126T100000Z-daily-0005';
const oldSince = new Date(now.getTime() - 25 * HOUR).toISOString();
const youngSince = new Date(now.getTime() - 2 * HOUR).toISOString();

let dir: string;
let destination: RecordingDestination;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-prune-report-'));
  destination = new RecordingDestination(dir);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const marker = (id: string, since: string, state: string) => JSON.stringify({ tool: 'sutazai-backup', snapshot: id, state, since });
const snapshot = (id: string) => writeFolder(dir, id, { 'configs.tar.zst': 'data', 'manifest.json': '{}' });
const suspect = (id: string, repository: string): SuspectSnapshot => ({
  id,
  repository,
  kind: 'authentication',
  error: `${repository}: snapshot ${id}: its HMAC does not match`,
  at: now.toISOString(),
});
const markerBytes = (id: string, at: Date) => Buffer.byteLength(`${marker(id, at.toISOString(), 'deleting')}\n`);
const perProfile = (last: number) => policyFor({ daily: { retention: { last } } }, undefined);

describe('prune tells what it does', () => {
  beforeEach(async () => {
    for (const id of ids) await snapshot(id);
    await writeFolder(dir, foreign, { 'photos.tar': 'not ours' });
    // Interrupted right after the marker was written: the marker is all there is.
    await writeFolder(dir, old, { [MARKER_FILE]: marker(old, oldSince, 'deleting') });
    await writeFolder(dir, young, { 'configs.tar.zst': 'half', [MARKER_FILE]: marker(young, youngSince, 'uploading') });
  });

  it('at a destination: a dry run says what would go and asks nothing of the destination; the real run says the same and deletes it', async () => {
    const repo = new Repository(destination, 'destinations.offsite');
    const options = (dryRun: boolean) => ({ policy: perProfile(2), override: undefined, suspects: [suspect(ids[3]!, 'destinations.offsite')], now, dryRun, ...capturingLogger() });
    const expected = (verb: string) => [
      {
        level: 'warn',
        msg: `keeping suspect snapshot ${ids[3]} at destinations.offsite (authentication: its HMAC does not match): it fills no retention slot; \`sutazai-backup forget ${ids[3]} --from offsite\` deletes it`,
      },
      { level: 'warn', msg: `destinations.offsite: snapshots/${foreign}/ has no manifest and no marker of this tool (1 object(s)): not created by sutazai-backup, left alone` },
      { level: 'info', msg: `${verb} ${ids[0]} from destinations.offsite (per profile)` },
      { level: 'info', msg: `${verb} the incomplete snapshot ${old} from destinations.offsite (deleting since ${oldSince})` },
      { level: 'info', msg: `destinations.offsite: ${young} is incomplete (uploading since ${youngSince}): removed once 24 h have passed` },
    ];

    const dry = options(true);
    const planned = await pruneRepository(repo, dry);
    expect(dry.lines).toEqual(expected('would remove'));
    expect(planned.policy).toBe('per profile');
    expect(planned.incomplete).toEqual([
      { id: old, objects: 1, state: 'deleting', since: oldSince, removed: true },
      { id: young, objects: 2, state: 'uploading', since: youngSince, removed: false },
    ]);
    expect(destination.calls).toEqual([]);

    const real = options(false);
    await pruneRepository(repo, real);
    expect(real.lines).toEqual(expected('removing'));
    // The snapshot: marker first, manifest next, artifacts, marker last; the incomplete one: its
    // marker. Nothing is asked of the snapshots that stay.
    expect(destination.calls).toEqual([
      `put snapshots/${ids[0]}/${MARKER_FILE} (${markerBytes(ids[0]!, now)} bytes)`,
      `delete snapshots/${ids[0]}/manifest.json`,
      `delete snapshots/${ids[0]}/configs.tar.zst`,
      `delete snapshots/${ids[0]}/${MARKER_FILE}`,
      `delete snapshots/${old}/${MARKER_FILE}`,
    ]);
    expect((await fsp.readdir(path.join(dir, 'snapshots'))).sort()).toEqual([foreign, ...ids.slice(1), young].sort());
  });

  it("at backupRoot with a destination's own policy: the policy is named, and forget needs no --from", async () => {
    const repo = new Repository(destination, 'backupRoot');
    const { logger, lines } = capturingLogger();
    const result = await pruneRepository(repo, {
      policy: policyFor({ daily: { retention: { last: 1 } } }, { last: 2 }),
      override: { last: 2 },
      suspects: [suspect(ids[3]!, 'backupRoot')],
      now,
      dryRun: true,
      logger,
    });
    expect(result.policy).toBe('last 2');
    expect(lines.map((l) => l.msg).filter((m) => /suspect|remove /.test(m))).toEqual([
      `keeping suspect snapshot ${ids[3]} at backupRoot (authentication: its HMAC does not match): it fills no retention slot; \`sutazai-backup forget ${ids[3]}\` deletes it`,
      `would remove ${ids[0]} from backupRoot (last 2)`,
      `would remove the incomplete snapshot ${old} from backupRoot (deleting since ${oldSince})`,
    ]);
  });

  it('a suspect the policy removes anyway goes, and is not reported as kept', async () => {
    const repo = new Repository(destination, 'backupRoot');
    const { logger, lines } = capturingLogger();
    const result = await pruneRepository(repo, { policy: perProfile(1), override: undefined, suspects: [suspect(ids[0]!, 'backupRoot')], now, dryRun: false, logger });
    expect(result.removed.map((d) => [d.id, d.suspect ?? false])).toEqual([
      [ids[2], false],
      [ids[1], false],
      [ids[0], true],
    ]);
    expect(result.suspects).toEqual([]);
    expect(lines.filter((l) => l.msg.includes('suspect snapshot'))).toEqual([]);
  });

  it('a marker beside a manifest that cannot be removed is a warning, not a failed prune', async () => {
    await writeFolder(dir, ids[3]!, { [MARKER_FILE]: marker(ids[3]!, youngSince, 'uploading') });
    class StuckMarker extends RecordingDestination {
      override async delete(key: string): Promise<void> {
        if (key === `snapshots/${ids[3]}/${MARKER_FILE}`) throw new Error('EACCES: permission denied');
        return super.delete(key);
      }
    }
    const repo = new Repository(new StuckMarker(dir), 'destinations.nas');
    const { logger, lines } = capturingLogger();
    const result = await pruneRepository(repo, { policy: perProfile(4), override: undefined, suspects: [], now, dryRun: false, logger });
    expect(result.removed).toEqual([]);
    expect(lines).toContainEqual({ level: 'warn', msg: `destinations.nas: could not remove the marker of ${ids[3]}: EACCES: permission denied` });
  });
});

describe("prune's history record and status's foreign folders", () => {
  it('the record names what was removed, the incomplete snapshots removed, the suspects kept and the foreign folders', async () => {
    for (const id of ids) await snapshot(id);
    await writeFolder(dir, foreign, { 'photos.tar': 'not ours' });
    await writeFolder(dir, old, { [MARKER_FILE]: marker(old, oldSince, 'deleting') });
    await writeFolder(dir, young, { [MARKER_FILE]: marker(young, youngSince, 'uploading') });
    const repo = new Repository(destination, 'destinations.offsite');
    const { logger } = capturingLogger();
    const result = await pruneRepository(repo, { policy: perProfile(2), override: undefined, suspects: [suspect(ids[3]!, 'destinations.offsite')], now, dryRun: false, logger });
    const finished = new Date(now.getTime() + 5000);
    expect(pruneRecord(result, now, finished)).toEqual({
      kind: 'prune',
      status: 'success',
      startedAt: now.toISOString(),
      finishedAt: finished.toISOString(),
      repository: 'destinations.offsite',
      removed: [ids[0]],
      incomplete: [old],
      suspects: [ids[3]],
      foreign: [foreign],
    });
  });

  it("foreign folders: backupRoot's as they are now, each configured destination's as its last prune saw them", async () => {
    await snapshot(ids[0]!);
    await writeFolder(dir, foreign, { 'photos.tar': 'not ours' });
    await writeFolder(dir, '20261102T000000Z-daily-abcd', { 'notes.txt': 'not ours either' });
    await writeFolder(dir, young, { 'configs.tar.zst': 'half', [MARKER_FILE]: marker(young, youngSince, 'uploading') });
    const listing = await new Repository(destination, 'backupRoot').listing();
    const prune = (repository: string, extra: Record<string, unknown>): HistoryRecord => ({ kind: 'prune', status: 'success', startedAt: 't', finishedAt: 't', repository, ...extra });
    const records: HistoryRecord[] = [
      prune('destinations.offsite', { foreign: ['20260101T000000Z-daily-0001'] }),
      prune('destinations.offsite', { foreign: ['20260102T000000Z-daily-0002', '20260103T000000Z-daily-0003'] }),
      prune('destinations.retired', { foreign: ['20260104T000000Z-daily-0004'] }),
      prune('backupRoot', { foreign: ['20260105T000000Z-daily-0005'] }),
      prune('destinations.nas', {}),
      { kind: 'verify', status: 'success', startedAt: 't', finishedAt: 't', repository: 'destinations.nas', foreign: ['20260106T000000Z-daily-0006'] },
    ];
    const configured = (r: string) => r !== 'destinations.retired';
    expect(foreignFolders(records, listing, configured)).toEqual([
      { repository: 'backupRoot', id: foreign },
      { repository: 'backupRoot', id: '20261102T000000Z-daily-abcd' },
      { repository: 'destinations.offsite', id: '20260102T000000Z-daily-0002' },
      { repository: 'destinations.offsite', id: '20260103T000000Z-daily-0003' },
    ]);
    expect(foreignFolders(records.slice(0, 1), undefined, configured)).toEqual([{ repository: 'destinations.offsite', id: '20260101T000000Z-daily-0001' }]);
  });
});

describe('forget', () => {
  it("names the suspect it deletes (this repository's only), and what was found instead of a missing snapshot", async () => {
    for (const id of ids) await snapshot(id);
    await writeFolder(dir, foreign, { 'photos.tar': 'not ours' });
    const repo = new Repository(destination, 'destinations.offsite');
    const { logger, lines } = capturingLogger();
    const suspects = [suspect(ids[0]!, 'backupRoot'), suspect(ids[1]!, 'destinations.offsite')];

    expect(await forgetSnapshot(repo, ids[1]!, { suspects, now, logger })).toEqual({ repository: 'destinations.offsite', id: ids[1], suspect: suspects[1] });
    expect(await forgetSnapshot(repo, ids[0]!, { suspects, now, logger })).toEqual({ repository: 'destinations.offsite', id: ids[0], suspect: null });
    expect(lines).toEqual([
      { level: 'info', msg: `forgetting ${ids[1]} at destinations.offsite (suspect: authentication: its HMAC does not match)` },
      { level: 'info', msg: `forgetting ${ids[0]} at destinations.offsite` },
    ]);

    await expect(forgetSnapshot(repo, foreign, { suspects, now, logger })).rejects.toThrow(
      `snapshot ${foreign} not found in destinations.offsite (local:${dir}): snapshots/${foreign}/ has no manifest (prune removes the tool's own incomplete snapshots after 24 h and leaves others alone)`,
    );
    const missing = await forgetSnapshot(repo, ids[0]!, { suspects, now, logger }).catch((e: BackupError) => e);
    expect(missing).toMatchObject({ code: 'E_NOT_FOUND', message: `snapshot ${ids[0]} not found in destinations.offsite (local:${dir})` });
    await expect(forgetSnapshot(repo, 'latest', { suspects, now, logger })).rejects.toThrow(
      'forget needs a full snapshot id like 20261126T020000Z-daily-3f9a (not a prefix, not "latest"): "latest" is not one (see `sutazai-backup list`)',
    );
  });
});

describe('the refusals as --json prints them', () => {
  const d = (id: string, keep: boolean) => ({ id, time: now, keep, reasons: [] });

  it('name the repository, and the snapshots the policy keeps', () => {
    const everything = (() => {
      try {
        checkPrunePlan('destinations.offsite', [d('a', false)], [d('a', false)]);
      } catch (err) {
        return (err as BackupError).toJSON();
      }
    })();
    expect(everything).toEqual({
      code: 'E_RETENTION',
      message: 'destinations.offsite: refusing to prune: the retention policy would delete every snapshot',
      details: { repository: 'destinations.offsite' },
    });
    const beyond = (() => {
      try {
        checkPrunePlan('backupRoot', [d('a', true), d('b', false), d('c', false)], [d('a', true), d('b', true), d('c', true)]);
      } catch (err) {
        return (err as BackupError).toJSON();
      }
    })();
    expect(beyond).toEqual({
      code: 'E_RETENTION',
      message: 'backupRoot: refusing to prune: b, c would be removed although the policy keeps it',
      details: { repository: 'backupRoot', ids: ['b', 'c'] },
    });
  });

  it('a profile that is no longer configured keeps its snapshots, and says why', () => {
    const decisions = decideRetention(['20261001T040000Z-retired-0001'], perProfile(1), new Set(), now);
    expect(decisions).toEqual([{ id: '20261001T040000Z-retired-0001', time: new Date('2026-10-01T04:00:00Z'), keep: true, reasons: ['profile retired is not configured'] }]);
  });
});

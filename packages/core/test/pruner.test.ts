/**
 * The prune decisions and deletions over a real folder (a LocalDestination in a temp folder): what
 * is removed, what is reported and left alone, and the guard before anything is deleted.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDestination } from '../src/destination.js';
import { isBackupError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { checkPrunePlan, decideRetention, forgetSnapshot, INCOMPLETE_GRACE_MS, policyFor, pruneRepository } from '../src/pruner.js';
import { MARKER_FILE, Repository } from '../src/repository.js';
import type { RetentionDecision } from '../src/retention.js';
import type { SuspectSnapshot } from '../src/suspects.js';

const logger = createLogger({ level: 'silent' });
const now = new Date('2026-11-26T12:00:00Z');
const HOUR = 3_600_000;

let dir: string;
let repo: Repository;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-pruner-'));
  repo = new Repository(new LocalDestination(dir), 'backupRoot');
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A snapshot folder on disk: the given files (name → content). */
async function folder(id: string, files: Record<string, string>): Promise<void> {
  await fsp.mkdir(path.join(dir, 'snapshots', id), { recursive: true });
  for (const [name, content] of Object.entries(files)) await fsp.writeFile(path.join(dir, 'snapshots', id, name), content);
}
const snapshot = (id: string) => folder(id, { 'configs.tar.zst': 'data', 'manifest.json': '{}' });
const marker = (id: string, since: Date, state = 'uploading') => JSON.stringify({ tool: 'sutazai-backup', snapshot: id, state, since: since.toISOString() });
const onDisk = async () => (await fsp.readdir(path.join(dir, 'snapshots')).catch(() => [] as string[])).sort();
const decision = (id: string, keep: boolean): RetentionDecision => ({ id, time: now, keep, reasons: keep ? ['last 1'] : [] });

describe('checkPrunePlan (the guard before deleting)', () => {
  it('refuses a plan that removes every snapshot', () => {
    const plan = [decision('a', false), decision('b', false)];
    expect(() => checkPrunePlan('destinations.offsite', plan, plan)).toThrow(
      expect.objectContaining({ code: 'E_RETENTION', message: 'destinations.offsite: refusing to prune: the retention policy would delete every snapshot' }),
    );
  });

  it('refuses a plan that removes a snapshot the plain policy keeps, or one it never decided', () => {
    const plain = [decision('a', true), decision('b', true), decision('c', false)];
    expect(() => checkPrunePlan('backupRoot', [decision('a', true), decision('b', false), decision('c', false)], plain)).toThrow(
      expect.objectContaining({ code: 'E_RETENTION', message: 'backupRoot: refusing to prune: b would be removed although the policy keeps it' }),
    );
    expect(() => checkPrunePlan('backupRoot', [decision('a', true), decision('x', false)], plain)).toThrow(expect.objectContaining({ code: 'E_RETENTION' }));
  });

  it('lets through a plan within the policy, and an empty repository', () => {
    const plain = [decision('a', true), decision('b', false)];
    expect(() => checkPrunePlan('backupRoot', plain, plain)).not.toThrow();
    expect(() => checkPrunePlan('backupRoot', [], [])).not.toThrow();
  });
});

describe('decideRetention', () => {
  const ids = [
    '20261120T020000Z-daily-0001',
    '20261121T020000Z-daily-0002',
    '20261122T020000Z-daily-0003',
    '20261108T030000Z-weekly-0001',
    '20261115T030000Z-weekly-0002',
    '20261122T030000Z-weekly-0003',
    '20261001T040000Z-retired-0001',
    '20261002T040000Z-retired-0002',
  ];
  const profiles = { daily: { retention: { last: 2 } }, weekly: { retention: { last: 1 } } };

  it('prunes each profile by its own policy and keeps the snapshots of a profile no longer configured', () => {
    const kept = decideRetention(ids, policyFor(profiles, undefined), new Set(), now)
      .filter((d) => d.keep)
      .map((d) => d.id)
      .sort();
    expect(kept).toEqual([
      '20261001T040000Z-retired-0001',
      '20261002T040000Z-retired-0002',
      '20261121T020000Z-daily-0002',
      '20261122T020000Z-daily-0003',
      '20261122T030000Z-weekly-0003',
    ]);
  });

  it('applies a destination\'s own retention to every configured profile, still keeping the unconfigured one', () => {
    const decisions = decideRetention(ids, policyFor(profiles, { last: 3 }), new Set(), now);
    expect(decisions.filter((d) => !d.keep).map((d) => d.id)).toEqual([]);
    const tight = decideRetention(ids, policyFor(profiles, { last: 1 }), new Set(), now);
    expect(tight.filter((d) => d.keep).map((d) => d.id).sort()).toEqual([
      '20261001T040000Z-retired-0001',
      '20261002T040000Z-retired-0002',
      '20261122T020000Z-daily-0003',
      '20261122T030000Z-weekly-0003',
    ]);
  });
});

describe('pruneRepository over a folder', () => {
  const ids = ['20261123T020000Z-daily-0001', '20261124T020000Z-daily-0002', '20261125T020000Z-daily-0003', '20261126T020000Z-daily-0004'];
  const options = (dryRun: boolean, suspects: SuspectSnapshot[] = [], at = now) => ({
    policy: policyFor({ daily: { retention: { last: 2 } } }, undefined),
    override: undefined,
    suspects,
    now: at,
    dryRun,
    logger,
  });

  it('removes what the policy removes, keeps suspects it keeps, and the dry run lists exactly what the real one removes', async () => {
    for (const id of ids) await snapshot(id);
    const suspects: SuspectSnapshot[] = [
      { id: ids[3]!, repository: 'backupRoot', kind: 'authentication', error: 'its HMAC does not match', at: now.toISOString() },
      // Another repository's suspect does not count here.
      { id: ids[2]!, repository: 'destinations.drive', kind: 'read', error: 'EIO', at: now.toISOString() },
    ];
    const dry = await pruneRepository(repo, options(true, suspects));
    // Plain last 2: 0004, 0003. Without the suspect: 0003, 0002. Removed: only 0001.
    expect(dry.removed.map((d) => d.id)).toEqual([ids[0]]);
    expect(dry.kept.map((d) => [d.id, d.suspect ?? false])).toEqual([
      [ids[3], true],
      [ids[2], false],
      [ids[1], false],
    ]);
    expect(dry.suspects.map((s) => s.id)).toEqual([ids[3]]);
    expect(await onDisk()).toEqual(ids);

    const real = await pruneRepository(repo, options(false, suspects));
    expect(real.removed).toEqual(dry.removed);
    expect(await onDisk()).toEqual(ids.slice(1));
  });

  it('leaves a folder without manifest or marker alone and reports it; removes a marked one only after the grace period', async () => {
    await snapshot(ids[3]!);
    const foreign = '20261101T000000Z-daily-abcd';
    await folder(foreign, { 'photos.tar': 'someone else\'s data' });
    const fake = '20261102T000000Z-daily-abcd';
    await folder(fake, { 'x.bin': 'x', [MARKER_FILE]: '{"tool":"something-else"}' });
    const young = '20261126T100000Z-daily-0005';
    await folder(young, { 'configs.tar.zst': 'half', [MARKER_FILE]: marker(young, new Date(now.getTime() - 2 * HOUR)) });
    const old = '20261125T000000Z-daily-0006';
    await folder(old, { 'configs.tar.zst': 'half', [MARKER_FILE]: marker(old, new Date(now.getTime() - INCOMPLETE_GRACE_MS), 'deleting') });

    const dry = await pruneRepository(repo, options(true));
    expect(dry.foreign).toEqual([
      { id: foreign, objects: 1, bytes: 19 },
      { id: fake, objects: 2, bytes: 26 },
    ]);
    expect(dry.incomplete.map((i) => [i.id, i.state, i.removed])).toEqual([
      [old, 'deleting', true],
      [young, 'uploading', false],
    ]);
    expect(dry.orphans).toBe(1);
    const before = await onDisk();

    const real = await pruneRepository(repo, options(false));
    expect(real.incomplete).toEqual(dry.incomplete);
    expect(await onDisk()).toEqual(before.filter((id) => id !== old));
    expect(await fsp.readFile(path.join(dir, 'snapshots', foreign, 'photos.tar'), 'utf8')).toBe('someone else\'s data');

    // A day later the young one goes too; the foreign ones never do.
    await pruneRepository(repo, options(false, [], new Date(now.getTime() + INCOMPLETE_GRACE_MS)));
    expect(await onDisk()).toEqual([foreign, fake, ids[3]].sort());
  });

  it('a deletion cut short leaves the marker, so the next prune finishes it after the grace period', async () => {
    const [a, b, c] = ids;
    for (const id of [a!, b!, c!]) await folder(id, { 'one.tar.zst': '1', 'two.tar.zst': '2', 'manifest.json': '{}' });
    // The medium fails after the manifest and one artifact are gone (a disk error, a crash).
    class Failing extends LocalDestination {
      deletes = 0;
      override async delete(key: string): Promise<void> {
        if (++this.deletes === 3) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
        return super.delete(key);
      }
    }
    const failing = new Repository(new Failing(dir), 'backupRoot');
    const policy = { ...options(false), policy: policyFor({ daily: { retention: { last: 2 } } }, undefined) };
    await expect(pruneRepository(failing, policy)).rejects.toThrow(/backupRoot: deleting snapshot 20261123T020000Z-daily-0001: EIO/);
    const left = (await fsp.readdir(path.join(dir, 'snapshots', a!))).sort();
    expect(left).toEqual([MARKER_FILE, 'two.tar.zst']);

    const next = await pruneRepository(repo, options(false));
    expect(next.incomplete.map((i) => [i.id, i.state, i.removed])).toEqual([[a, 'deleting', false]]);
    await pruneRepository(repo, options(false, [], new Date(now.getTime() + INCOMPLETE_GRACE_MS)));
    expect(await onDisk()).toEqual([b, c]);
  });

  it('removes a stray marker beside a manifest (an upload stopped after its manifest)', async () => {
    await folder(ids[3]!, { 'configs.tar.zst': 'x', 'manifest.json': '{}', [MARKER_FILE]: marker(ids[3]!, now) });
    await pruneRepository(repo, options(false));
    expect((await fsp.readdir(path.join(dir, 'snapshots', ids[3]!))).sort()).toEqual(['configs.tar.zst', 'manifest.json']);
  });
});

describe('forgetSnapshot', () => {
  it('deletes exactly the named snapshot, and refuses a prefix, "latest" and a folder without manifest', async () => {
    const ids = ['20261125T020000Z-daily-0001', '20261126T020000Z-daily-0002'];
    for (const id of ids) await snapshot(id);
    await folder('20261101T000000Z-daily-abcd', { 'photos.tar': 'x' });
    const opts = { suspects: [], now, logger };
    for (const bad of ['latest', '20261126', '20261126T020000Z-daily']) {
      const err = await forgetSnapshot(repo, bad, opts).catch((e: unknown) => e);
      expect(isBackupError(err) && err.code, bad).toBe('E_USAGE');
    }
    await expect(forgetSnapshot(repo, '20261101T000000Z-daily-abcd', opts)).rejects.toThrow(/has no manifest/);
    await expect(forgetSnapshot(repo, '20261127T020000Z-daily-0009', opts)).rejects.toThrow(expect.objectContaining({ code: 'E_NOT_FOUND' }));
    expect(await onDisk()).toEqual(['20261101T000000Z-daily-abcd', ...ids]);

    const result = await forgetSnapshot(repo, ids[1]!, opts);
    expect(result).toEqual({ repository: 'backupRoot', id: ids[1], suspect: null });
    expect(await onDisk()).toEqual(['20261101T000000Z-daily-abcd', ids[0]]);
  });
});

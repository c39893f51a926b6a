import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalDestination } from '../src/destination.js';
import { isBackupError } from '../src/errors.js';
import { MARKER_FILE } from '../src/repository.js';
import { DEFAULT_FORMAT, openRepository } from '../src/repository-format.js';

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true }))));

async function store(): Promise<LocalDestination> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-format-'));
  dirs.push(dir);
  return new LocalDestination(dir);
}

describe('the repository format seam', () => {
  it('opens the tar layout by default, and restic\'s when the rc file names it', async () => {
    expect(DEFAULT_FORMAT).toBe('tar');
    const repo = openRepository(await store(), 'destinations.offsite');
    expect(repo.format).toBe('tar');
    expect(repo.name).toBe('destinations.offsite');
    const restic = openRepository(await store(), 'backupRoot', 'restic', { password: 'pw' });
    expect(restic.format).toBe('restic');
    // Nothing is created until the first run: an empty folder holds no snapshots.
    expect(await restic.snapshotIds()).toEqual([]);
  });

  it('refuses a format this version cannot open, naming the key', () => {
    let error: unknown;
    try {
      openRepository(new LocalDestination('/nonexistent'), 'backupRoot', 'borg' as never);
    } catch (err) {
      error = err;
    }
    expect(isBackupError(error) && error.code).toBe('E_CONFIG');
    expect((error as Error).message).toMatch(/repository\.format: the borg format is not available.*available: tar, restic/);
  });

  it("lists which snapshot folders carry the tool's incomplete marker", async () => {
    const dest = await store();
    await fsp.mkdir(path.join(dest.root, 'snapshots/20261126T020000Z-daily-3f9a'), { recursive: true });
    await fsp.writeFile(path.join(dest.root, 'snapshots/20261126T020000Z-daily-3f9a', MARKER_FILE), '{}');
    await fsp.mkdir(path.join(dest.root, 'snapshots/20261127T020000Z-daily-3f9a'), { recursive: true });
    await fsp.writeFile(path.join(dest.root, 'snapshots/20261127T020000Z-daily-3f9a/data.tar.zst'), 'x');
    const listing = await openRepository(dest, 'backupRoot').listing();
    expect([...listing.objects.keys()].sort()).toEqual(['20261126T020000Z-daily-3f9a', '20261127T020000Z-daily-3f9a']);
    expect([...listing.marked]).toEqual(['20261126T020000Z-daily-3f9a']);
    expect(listing.ids).toEqual([]);
  });
});

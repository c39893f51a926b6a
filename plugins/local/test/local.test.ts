import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '@sutazai/backup-testkit';
import { MountCheckedDestination, mountPointOf, mountPoints } from '../src/index.js';

describe('mount points', () => {
  it('parses /proc/self/mountinfo, decoding escaped spaces', () => {
    const info = '26 1 254:0 / / rw - ext4 /dev/vda rw\n40 26 0:50 / /mnt/backup\\040drive rw - ext4 /dev/sdb1 rw\n';
    expect(mountPoints(info)).toEqual(['/', '/mnt/backup drive']);
  });
  it('finds the longest mount point holding a path', () => {
    const mounts = ['/', '/mnt', '/mnt/drive'];
    expect(mountPointOf('/mnt/drive/sutazai', mounts)).toBe('/mnt/drive');
    expect(mountPointOf('/mnt/drive2/x', mounts)).toBe('/mnt');
    expect(mountPointOf('/var/backups', mounts)).toBe('/');
  });
});

describe('requireMount on a real file system', () => {
  let base: string;
  let mounted: string;
  beforeAll(async () => {
    base = await makeTempDir();
    mounted = path.join(base, 'drive');
    await fsp.mkdir(mounted);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mounted]);
  });
  afterAll(async () => {
    execFileSync('umount', [mounted]);
    await fsp.rm(base, { recursive: true, force: true });
  });

  it('refuses to write to a folder on the root file system and writes nothing', async () => {
    const unplugged = path.join(base, 'unplugged', 'sutazai');
    const dest = new MountCheckedDestination(unplugged, true);
    await expect(dest.put('snapshots/x/manifest.json', Readable.from([Buffer.from('{}')]))).rejects.toThrow(
      `${unplugged} is not on a mounted drive (requireMount: true)`,
    );
    await expect(fsp.access(path.join(base, 'unplugged'))).rejects.toThrow();
  });

  it('writes to a folder on a mounted drive, 0600 inside 0700 folders', async () => {
    const dest = new MountCheckedDestination(path.join(mounted, 'sutazai'), true);
    await dest.put('snapshots/x/manifest.json', Readable.from([Buffer.from('{}')]));
    expect(await dest.stat('snapshots/x/manifest.json')).toMatchObject({ size: 2 });
    expect((await fsp.stat(path.join(mounted, 'sutazai', 'snapshots', 'x', 'manifest.json'))).mode & 0o777).toBe(0o600);
    expect((await fsp.stat(path.join(mounted, 'sutazai', 'snapshots'))).mode & 0o777).toBe(0o700);
  });
});

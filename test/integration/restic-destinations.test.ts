/**
 * The restic repository format on remote destinations: what ResticRepository writes through the
 * S3 plugin (to s3rver), the SFTP plugin and the rsync plugin (to OpenSSH) is checked, listed and
 * restored by stock restic with `-r s3:…` and `-r sftp:…`, and what restic adds there is read back
 * by us.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Destination, s3Options } from '../../plugins/s3/src/index.js';
import { RsyncDestination, rsyncOptions } from '../../plugins/rsync/src/index.js';
import { SftpDestination, sftpOptions } from '../../plugins/sftp/src/index.js';
import { getRange, PrefixedDestination, type Destination } from '../../packages/core/src/destination.js';
import { checkData, checkStructure } from '../../packages/core/src/restic/check.js';
import { readAll, ResticRepository } from '../../packages/core/src/restic/repository.js';
import { tempDir } from '../helpers/cli.js';
import { restic, saveHandTree, sha, snapshotJson, TEST_KDF } from '../helpers/restic.js';
import { startS3, startSshd, type S3Server, type SshServer } from '../helpers/servers.js';

let s3: S3Server;
let sshd: SshServer;
let work: string;

beforeAll(async () => {
  // A login whose shell starts fast: rsync starts one for every object.
  [s3, sshd] = await Promise.all([startS3({ buckets: ['restic'] }), startSshd({ user: 'sutazai-test' })]);
  work = await tempDir('sutazai-restic-remote-');
});
afterAll(async () => {
  await Promise.all([s3?.stop(), sshd?.stop()]);
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

interface Remote {
  destination: () => Destination;
  /** restic's repository argument and the environment it needs. */
  repo: () => string;
  args: () => string[];
  env: () => NodeJS.ProcessEnv;
  /**
   * Whether restic can write there. restic's S3 client (minio-go) signs uploads over plain HTTP as
   * aws-chunked streams, which s3rver stores undecoded (chunk signatures and all): restic cannot
   * even back up to s3rver itself, so only reading is tested on S3.
   */
  resticWrites: boolean;
  /** Whether it reads ranges itself (getRange); others are read through get, skipping to the range. */
  ranged: boolean;
  /**
   * Whether to load every blob back through it. rsync starts a process (and an ssh session) per
   * object: reading blob by blob is for SFTP, which reads the same folder.
   */
  readsEveryBlob: boolean;
}

const remotes: Record<string, Remote> = {
  s3: {
    destination: () =>
      new PrefixedDestination(
        new S3Destination(
          s3Options.parse({ bucket: 'restic', endpoint: s3.endpoint, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }),
        ),
        'hosts/box-1',
      ),
    repo: () => `s3:${s3.endpoint}/restic/hosts/box-1`,
    args: () => [],
    env: () => ({ AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey }),
    resticWrites: false,
    ranged: true,
    readsEveryBlob: true,
  },
  sftp: {
    destination: () =>
      new SftpDestination(
        sftpOptions.parse({
          host: sshd.host,
          port: sshd.port,
          username: sshd.user,
          privateKey: sshd.privateKeyPath,
          knownHosts: sshd.knownHostsPath,
          path: `${sshd.homeDir}/restic-repo`,
        }),
        { configDir: sshd.dir },
      ),
    repo: () => `sftp:${sshd.user}@${sshd.host}:${sshd.homeDir}/restic-repo`,
    args: () => ['-o', `sftp.command=ssh ${sshd.sshArgs.join(' ')} ${sshd.user}@${sshd.host} -s sftp`],
    env: () => ({}),
    resticWrites: true,
    ranged: true,
    readsEveryBlob: true,
  },
  // rsync over ssh writes plain files into a remote folder: restic reads that folder over SFTP.
  rsync: {
    destination: () =>
      new RsyncDestination(
        rsyncOptions.parse({
          target: `${sshd.user}@${sshd.host}:${sshd.homeDir}/restic-rsync`,
          port: sshd.port,
          privateKey: sshd.privateKeyPath,
          knownHosts: sshd.knownHostsPath,
        }),
        { configDir: sshd.dir, backupRoot: work },
      ),
    repo: () => `sftp:${sshd.user}@${sshd.host}:${sshd.homeDir}/restic-rsync`,
    args: () => ['-o', `sftp.command=ssh ${sshd.sshArgs.join(' ')} ${sshd.user}@${sshd.host} -s sftp`],
    env: () => ({}),
    resticWrites: true,
    ranged: false,
    readsEveryBlob: false,
  },
};

describe.each(Object.keys(remotes))('a restic repository on the %s destination', (kind) => {
  const remote = remotes[kind] as Remote;
  const files = [
    { name: 'app.log', content: Buffer.from(Array.from({ length: 30_000 }, (_, i) => `request ${i} served\n`).join('')) },
    { name: 'weights.bin', content: randomBytes(700_000) },
  ];

  it('is checked, listed and restored by stock restic, byte for byte', async () => {
    const dest = remote.destination();
    try {
      const repo = await ResticRepository.init(dest, { password: 'remote pw', kdf: TEST_KDF, packSize: 256 * 1024 });
      const tree = await saveHandTree(repo, 'data', files, 100_000);
      await repo.flush();
      const snapshot = await repo.saveJson('snapshots', snapshotJson(tree, ['/data']));
      const run = (args: string[]) => restic(remote.repo(), 'remote pw', [...remote.args(), ...args], remote.env());

      const check = await run(['check', '--read-data']);
      expect(check.stdout + check.stderr).toContain('no errors were found');
      expect(check.code).toBe(0);
      expect(JSON.parse((await run(['snapshots', '--json'])).stdout)).toMatchObject([{ id: snapshot, tree }]);
      const target = path.join(work, `${kind}-restored`);
      expect((await run(['restore', snapshot, '--target', target])).code).toBe(0);
      for (const f of files) expect(sha(await fsp.readFile(path.join(target, 'data', f.name)))).toBe(sha(f.content));

      // restic backs up into the same repository; we read every blob and check it.
      if (remote.resticWrites) {
        const src = path.join(work, `${kind}-src`);
        await fsp.mkdir(src);
        await fsp.writeFile(path.join(src, 'added-by-restic'), randomBytes(200_000));
        expect((await run(['backup', src])).code).toBe(0);
      }
      const again = await ResticRepository.open(dest, { password: 'remote pw' });
      expect(await again.list('snapshots')).toHaveLength(remote.resticWrites ? 2 : 1);
      if (!remote.readsEveryBlob) return;
      let blobs = 0;
      for (const id of await again.list('index')) {
        for (const pack of (await again.loadIndexFile(id)).packs) {
          for (const b of pack.blobs) {
            expect(sha(await again.load(b.type, b.id))).toBe(b.id);
            blobs++;
          }
        }
      }
      expect(blobs).toBe(again.blobCount);
      expect((await checkStructure(again)).findings).toEqual([]);
      expect((await checkData(again)).findings).toEqual([]);
    } finally {
      await dest.close?.();
    }
  });

  it('reads byte ranges of an object, which is how a blob is loaded', async () => {
    const dest = remote.destination();
    try {
      const body = randomBytes(3 * 1024 * 1024 + 17);
      await dest.put('ranges/object', Readable.from([body]), { size: body.length });
      expect(Boolean(dest.getRange)).toBe(remote.ranged);
      const range = async (offset: number, length: number) => readAll(await getRange(dest, 'ranges/object', offset, length));
      expect((await range(0, 10)).equals(body.subarray(0, 10))).toBe(true);
      expect((await range(1_000_003, 1_500_000)).equals(body.subarray(1_000_003, 2_500_003))).toBe(true);
      expect((await range(body.length - 5, 100)).equals(body.subarray(body.length - 5))).toBe(true);
      expect(await range(body.length + 10, 5)).toHaveLength(0);
      await expect(getRange(dest, 'ranges/missing', 0, 5)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    } finally {
      await dest.close?.();
    }
  });
});

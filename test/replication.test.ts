/**
 * Replication to all four destinations against real servers on loopback (s3rver, OpenSSH), and
 * restores from each destination alone after backupRoot is gone.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeRc, type CliResult } from './helpers/cli.js';
import {
  S3_SECRET,
  cliText,
  expectNoSecrets,
  expectSameTree,
  filesUnder,
  makeData,
  rcYaml,
  secretEnv,
  storageRoots,
  storedObjects,
  type DestinationSpec,
} from './helpers/replication.js';
import { startS3, startSshd, type S3Server, type SshServer } from './helpers/servers.js';

const DESTINATIONS = ['drive', 'offsite', 'vault', 'mirror'] as const;

let s3: S3Server;
let sshd: SshServer;
let work: string;

beforeAll(async () => {
  [s3, sshd] = await Promise.all([startS3({ buckets: ['sutazai-backups'] }), startSshd({ user: 'sutazai-test' })]);
  work = await tempDir('sutazai-replication-');
});

afterAll(async () => {
  await Promise.all([s3?.stop(), sshd?.stop()]);
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe('replication to local, s3, sftp and rsync', () => {
  it('backs up to all four destinations; with backupRoot deleted, each one alone lists, verifies, restores byte-identical data and prunes; no secret leaks', async () => {
    const dataDir = path.join(work, 'data');
    await makeData(dataDir);
    const dest: DestinationSpec = { drive: { path: path.join(work, 'drive') }, offsite: { server: s3 }, vault: { server: sshd }, mirror: { server: sshd } };
    await writeRc(work, rcYaml({ dataDir, dest }));
    const env = secretEnv(dest);
    const outputs: Record<string, string> = {};
    const cli = async (args: string[]): Promise<CliResult> => {
      const r = await runCli(args, { cwd: work, env });
      outputs[args.join(' ')] = cliText(r);
      return r;
    };

    const run = await cli(['run', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const report = run.json();
    expect(report.status).toBe('success');
    const id: string = report.snapshot;
    expect(report.destinations.map((d: { name: string }) => d.name).sort()).toEqual([...DESTINATIONS].sort());
    for (const d of report.destinations) {
      expect(d, d.name).toMatchObject({ status: 'ok', snapshots: [id], sent: 2, skipped: 0 });
      expect(d.bytes).toBeGreaterThan(2 * 1024 * 1024);
    }
    // What each server holds for the snapshot: the artifact and the manifest, nothing else.
    const roots = storageRoots(dest);
    for (const name of DESTINATIONS) {
      expect(await storedObjects(roots[name]!, id), name).toEqual(['configs.tar.zst', 'manifest.json']);
    }
    // Files 0600 and folders 0700 on the SSH servers, owned by the login user.
    for (const name of ['vault', 'mirror'] as const) {
      const file = await fsp.stat(path.join(roots[name]!, 'snapshots', id, 'configs.tar.zst'));
      const dir = await fsp.stat(path.join(roots[name]!, 'snapshots', id));
      expect([name, file.mode & 0o777, dir.mode & 0o777]).toEqual([name, 0o600, 0o700]);
      expect(file.uid).toBe((await fsp.stat(sshd.homeDir)).uid);
    }

    const manifests: Record<string, string> = {
      'backupRoot manifest': await fsp.readFile(path.join(work, 'backups', 'snapshots', id, 'manifest.json'), 'utf8'),
    };
    for (const name of DESTINATIONS) {
      const file = path.join(roots[name]!, 'snapshots', id, name === 'offsite' ? 'manifest.json._S3rver_object' : 'manifest.json');
      manifests[`${name} manifest`] = await fsp.readFile(file, 'utf8');
    }

    await fsp.rm(path.join(work, 'backups'), { recursive: true, force: true });

    for (const name of DESTINATIONS) {
      const list = await cli(['list', '--from', name, '--json']);
      expect(list.code, `${name}: ${list.stderr}`).toBe(0);
      expect(list.json().map((s: { id: string }) => s.id)).toEqual([id]);

      const verify = await cli(['verify', 'latest', '--from', name, '--json']);
      expect(verify.code, `${name}: ${verify.stderr}`).toBe(0);
      expect(verify.json()).toMatchObject({ ok: true, repository: `destinations.${name}` });

      const to = path.join(work, `restored-${name}`);
      const restore = await cli(['restore', 'latest', '--to', to, '--from', name]);
      expect(restore.code, `${name}: ${restore.stderr}`).toBe(0);
      await expectSameTree(path.join(to, 'configs', dataDir), dataDir);

      const prune = await cli(['prune', '--from', name, '--json']);
      expect(prune.code, `${name}: ${prune.stderr}`).toBe(0);
      const [pruned] = prune.json();
      expect(pruned).toMatchObject({ repository: `destinations.${name}`, removed: [] });
      expect(pruned.kept.map((k: { id: string }) => k.id)).toEqual([id]);
    }
    // Nothing but state (history, lock) came back under backupRoot: the restores read the destinations.
    expect((await filesUnder(path.join(work, 'backups'))).filter((f) => !f.startsWith('state/'))).toEqual([]);

    expectNoSecrets({ ...outputs, ...manifests }, [S3_SECRET, sshd.keyPassphrase]);
    // The debug log shows the work was done (so the secret check read real output).
    expect(outputs['run --json']).toContain('sending snapshots/');
  });

  it('keeps a different number of snapshots at each destination when its retention says so', async () => {
    const dir = await tempDir('sutazai-retention-');
    try {
      await makeData(path.join(dir, 'data'), 1024);
      await writeRc(
        dir,
        [
          'backupRoot: ./backups',
          'retention: { last: 5 }',
          'sources:',
          '  configs: { use: files, paths: [./data] }',
          'destinations:',
          '  near: { use: local, path: ./near }',
          '  far: { use: local, path: ./far, retention: { last: 1 } }',
          '',
        ].join('\n'),
      );
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await runCli(['run', '--json'], { cwd: dir });
        expect(r.code, r.stderr).toBe(0);
        ids.push(r.json().snapshot);
      }
      const listed = async (from: string) => (await runCli(['list', '--from', from, '--json'], { cwd: dir })).json().map((x: { id: string }) => x.id);
      expect(await listed('near')).toEqual(ids);
      expect(await listed('far')).toEqual([ids[2]]);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

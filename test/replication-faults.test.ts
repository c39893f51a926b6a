/**
 * Faults during replication, against real servers on loopback: each failing destination gets its
 * own error in the report, the others and the local snapshot stand, nothing appears under a
 * final name, and the next run completes the replica.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, writeRc, type CliResult } from './helpers/cli.js';
import {
  BUCKET,
  S3_SECRET,
  cliText,
  expectNoSecrets,
  filesUnder,
  makeData,
  rcYaml,
  secretEnv,
  storageRoots,
  storedObjects,
  waitFor,
  type DestinationSpec,
} from './helpers/replication.js';
import { startS3, startSshd, type S3Server, type SshServer } from './helpers/servers.js';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

let s3: S3Server;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  s3 = await startS3({ buckets: [BUCKET] });
  cleanups.push(() => s3.stop());
});

afterAll(async () => {
  for (const fn of cleanups.reverse()) await fn().catch(() => {});
});

interface Scenario {
  work: string;
  dataDir: string;
  dest: DestinationSpec;
  outputs: Record<string, string>;
  cli(args: string[]): Promise<CliResult>;
  start(args: string[]): ReturnType<typeof startCli>;
}

async function scenario(name: string, dest: (work: string) => DestinationSpec, bigBytes: number, opts: { host?: string; extra?: string } = {}): Promise<Scenario> {
  const work = await tempDir(`sutazai-fault-${name}-`);
  cleanups.push(() => fsp.rm(work, { recursive: true, force: true }));
  const dataDir = path.join(work, 'data');
  await makeData(dataDir, bigBytes);
  const spec = dest(work);
  // Keep every snapshot: the default daily rule would keep only the newest of the day, and these
  // tests check that the next run also sends the one the failed run could not.
  const extra = ['retention: { last: 10 }', ...(opts.extra ? [opts.extra] : [])].join('\n');
  await writeRc(work, rcYaml({ dataDir, dest: spec, ...(opts.host ? { host: opts.host } : {}), extra }));
  const env = secretEnv(spec);
  const outputs: Record<string, string> = {};
  let n = 0;
  return {
    work,
    dataDir,
    dest: spec,
    outputs,
    async cli(args) {
      const r = await runCli(args, { cwd: work, env, timeoutMs: 300_000 });
      outputs[`${++n}: ${args.join(' ')}`] = cliText(r);
      return r;
    },
    start(args) {
      const started = startCli(args, { cwd: work, env, timeoutMs: 300_000 });
      const label = `${++n}: ${args.join(' ')}`;
      void started.result.then((r) => (outputs[label] = cliText(r)));
      return started;
    },
  };
}

function byName(report: { destinations: { name: string }[] }): Record<string, any> {
  return Object.fromEntries(report.destinations.map((d) => [d.name, d]));
}

/** The next run sends what the failed one could not, and the destination then verifies whole. */
async function expectCompletedBy(s: Scenario, failedRun: string, names: string[]): Promise<string> {
  const run = await s.cli(['run', '--json']);
  expect(run.code, run.stderr).toBe(0);
  const report = run.json();
  const results = byName(report);
  for (const name of names) {
    expect(results[name], name).toMatchObject({ status: 'ok', snapshots: [report.snapshot, failedRun] });
    const verify = await s.cli(['verify', '--all', '--from', name, '--json']);
    expect(verify.code, `${name}: ${verify.stderr}`).toBe(0);
    const verified = verify.json().snapshots.map((x: { id: string; ok: boolean }) => [x.id, x.ok]);
    expect(verified).toEqual(expect.arrayContaining([[failedRun, true], [report.snapshot, true]]));
    expect(verified.every(([, ok]: [string, boolean]) => ok)).toBe(true);
  }
  return report.snapshot;
}

describe('replication faults', () => {
  it('S3 server stopped mid-upload: offsite fails with its own error, nothing under the final key, the next run completes the replica', async () => {
    const s = await scenario('s3', (work) => ({ drive: { path: path.join(work, 'drive') }, offsite: { server: s3, queueSize: 1 } }), 64 * MiB);
    const uploads = path.join(s3.directory, BUCKET, '._S3rver_uploads');
    const { result } = s.start(['run', '--json']);
    // Stop the server once the multipart upload has parts on it.
    await waitFor(async () => (await filesUnder(uploads)).some((f) => /\/[12]$/.test(f)), 120_000, 'a part of the upload at the S3 server');
    await s3.pause();
    const run = await result;
    await s3.resume();

    expect(run.code, run.stderr).toBe(1);
    const report = run.json();
    const id = report.snapshot;
    expect(id, 'the local snapshot stays committed').toMatch(/^\d{8}T\d{6}Z-default-/);
    const results = byName(report);
    expect(results.drive).toMatchObject({ status: 'ok', snapshots: [id] });
    expect(results.offsite).toMatchObject({ status: 'failed', code: 'E_DESTINATION' });
    expect(results.offsite.error).toMatch(/destinations\.offsite: uploading snapshots\/.*configs\.tar\.zst: s3:\/\/sutazai-backups\//);
    expect(report.errors).toEqual([expect.objectContaining({ stage: 'replicate', plugin: 'destinations.offsite' })]);

    const roots = storageRoots(s.dest);
    // Only the marker that says the folder is an upload of this tool's under way (prune leaves it 24 h).
    expect(await storedObjects(roots.offsite!, id)).toEqual(['.sutazai-incomplete.json']);
    const list = await s.cli(['list', '--from', 'offsite', '--json']);
    expect(list.json()).toEqual([]);

    await expectCompletedBy(s, id, ['offsite']);
    expectNoSecrets(s.outputs, [S3_SECRET]);
  });

  it('SSH connections dropped mid-upload: sftp and rsync fail with their own errors, nothing under a final name, the next run completes both replicas', async () => {
    const sshd = await startSshd({ user: 'sutazai-test' });
    cleanups.push(() => sshd.stop());
    const s = await scenario('ssh-drop', (work) => ({ drive: { path: path.join(work, 'drive') }, vault: { server: sshd }, mirror: { server: sshd } }), 64 * MiB, {
      // All three destinations at once, so that both SSH uploads are in flight together.
      extra: 'concurrency: 3',
    });
    const roots = storageRoots(s.dest);
    const { result } = s.start(['run', '--json']);
    // Wait until both uploads are under way: sftp's temp file and rsync's have bytes in them.
    const growing = async (dir: string, pattern: RegExp) => {
      for (const f of await filesUnder(dir)) {
        if (pattern.test(f) && (statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0) > MiB) return true;
      }
      return false;
    };
    await waitFor(
      async () => (await growing(roots.vault!, /\.configs\.tar\.zst\.tmp-/)) && (await growing(path.dirname(roots.mirror!), /^\.rsync-tmp\//)),
      120_000,
      'both uploads to be under way',
    );
    let dropping = true;
    let drops = 0;
    const dropper = (async () => {
      while (dropping) {
        drops += await sshd.dropConnections();
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const run = await result;
    dropping = false;
    await dropper;
    expect(drops).toBeGreaterThan(0);

    expect(run.code, run.stderr).toBe(1);
    const report = run.json();
    const id = report.snapshot;
    const results = byName(report);
    expect(results.drive).toMatchObject({ status: 'ok', snapshots: [id] });
    expect(results.vault).toMatchObject({ status: 'failed', code: 'E_DESTINATION' });
    expect(results.mirror).toMatchObject({ status: 'failed', code: 'E_DESTINATION' });
    expect(results.vault.error).toMatch(/^destinations\.vault: .*sftp:\/\/sutazai-test@127\.0\.0\.1/);
    expect(results.mirror.error).toMatch(/^destinations\.mirror: .*rsync:\/\/sutazai-test@127\.0\.0\.1/);
    expect(report.errors.map((e: { plugin: string }) => e.plugin).sort()).toEqual(['destinations.mirror', 'destinations.vault']);

    for (const name of ['vault', 'mirror']) {
      const stored = await storedObjects(roots[name]!, id);
      expect(stored.filter((f) => f === 'configs.tar.zst' || f === 'manifest.json'), name).toEqual([]);
      const list = await s.cli(['list', '--from', name, '--json']);
      expect(list.json(), name).toEqual([]);
    }

    await expectCompletedBy(s, id, ['vault', 'mirror']);
    expectNoSecrets(s.outputs, [sshd.keyPassphrase]);
  });

  it("the server's host key changed: sftp and rsync refuse with an error naming both fingerprints and send nothing; after the key is accepted the next run completes both", async () => {
    const sshd = await startSshd({ user: 'sutazai-test' });
    cleanups.push(() => sshd.stop());
    const s = await scenario('hostkey', (work) => ({ drive: { path: path.join(work, 'drive') }, vault: { server: sshd }, mirror: { server: sshd } }), MiB);
    const roots = storageRoots(s.dest);
    const first = await s.cli(['run', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const before = { vault: await filesUnder(roots.vault!), mirror: await filesUnder(roots.mirror!) };

    const oldFingerprint = sshd.hostKeyFingerprint;
    await sshd.rotateHostKey();
    const newFingerprint = sshd.hostKeyFingerprint;
    expect(newFingerprint).not.toBe(oldFingerprint);

    const run = await s.cli(['run', '--json']);
    expect(run.code, run.stderr).toBe(1);
    const report = run.json();
    const results = byName(report);
    expect(results.drive).toMatchObject({ status: 'ok' });
    for (const name of ['vault', 'mirror']) {
      expect(results[name], name).toMatchObject({ status: 'failed', code: 'E_AUTH', sent: 0 });
      expect(results[name].error, name).toContain('CHANGED');
      expect(results[name].error, name).toContain(newFingerprint);
      expect(results[name].error, name).toContain(oldFingerprint);
    }
    // Not retried: a changed key is no transient fault.
    expect(run.stderr).not.toMatch(/destinations\.(vault|mirror).*retrying/);
    expect({ vault: await filesUnder(roots.vault!), mirror: await filesUnder(roots.mirror!) }).toEqual(before);

    await fsp.writeFile(sshd.knownHostsPath, `[${sshd.host}]:${sshd.port} ${sshd.hostPublicKey}\n`);
    await expectCompletedBy(s, report.snapshot, ['vault', 'mirror']);
    expectNoSecrets(s.outputs, [sshd.keyPassphrase]);
  });

  it.skipIf(!isRoot)('the local drive is full (an 8 MiB tmpfs): drive fails with ENOSPC and keeps no half file, offsite succeeds; after the drive grows the next run completes it', async () => {
    const s = await scenario(
      'disk-full',
      (work) => ({ drive: { path: path.join(work, 'mnt', 'backups'), requireMount: true }, offsite: { server: s3 } }),
      12 * MiB,
      { host: 'disk-full-host' },
    );
    const mnt = path.join(s.work, 'mnt');
    await fsp.mkdir(mnt);
    const mount = (args: string[]) => {
      const r = spawnSync('mount', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mount ${args.join(' ')}: ${r.stderr}`);
    };
    mount(['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', mnt]);
    cleanups.push(async () => spawnSync('umount', [mnt]));

    const run = await s.cli(['run', '--json']);
    expect(run.code, run.stderr).toBe(1);
    const report = run.json();
    const id = report.snapshot;
    const results = byName(report);
    expect(results.offsite).toMatchObject({ status: 'ok', snapshots: [id] });
    expect(results.drive).toMatchObject({ status: 'failed', code: 'E_DESTINATION' });
    expect(results.drive.error).toMatch(/^destinations\.drive: uploading snapshots\/.*configs\.tar\.zst: ENOSPC: no space left on device/);
    expect(run.stderr).not.toMatch(/destinations\.drive.*retrying/);
    // No half file, under its final name or a temporary one: only the marker of the upload under way.
    expect(await filesUnder(mnt)).toEqual([`backups/disk-full-host/snapshots/${id}/.sutazai-incomplete.json`]);

    mount(['-o', 'remount,size=64m', mnt]);
    await expectCompletedBy(s, id, ['drive']);
    expectNoSecrets(s.outputs, [S3_SECRET]);
  });
});

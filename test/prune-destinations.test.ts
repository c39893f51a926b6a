/**
 * Prune deleting for real at S3 (s3rver), SFTP and rsync (OpenSSH) on loopback, each destination
 * by its own `retention`: what the servers hold on disk afterwards, and `prune --json` when it
 * deletes (its dry run first, which must list exactly what the real one removes).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeRc, type CliResult } from './helpers/cli.js';
import { BUCKET, S3_SECRET, cliText, expectNoSecrets, makeData, rcYaml, secretEnv, storageRoots, storedObjects, type DestinationSpec } from './helpers/replication.js';
import { startS3, startSshd, type S3Server, type SshServer } from './helpers/servers.js';

const REMOTES = ['offsite', 'vault', 'mirror'] as const;

let s3: S3Server;
let sshd: SshServer;
let work: string;

beforeAll(async () => {
  [s3, sshd] = await Promise.all([startS3({ buckets: [BUCKET] }), startSshd({ user: 'sutazai-test' })]);
  work = await tempDir('sutazai-prune-remote-');
});

afterAll(async () => {
  await Promise.all([s3?.stop(), sshd?.stop()]);
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

/** The rc file with a `retention` under each destination (and at the top, for backupRoot). */
function rcWith(dataDir: string, dest: DestinationSpec, keep: Record<'backupRoot' | (typeof REMOTES)[number], number>): string {
  let yaml = rcYaml({ dataDir, dest, extra: `retention: { last: ${keep.backupRoot} }` });
  for (const name of REMOTES) yaml = yaml.replace(`\n  ${name}:\n`, `\n  ${name}:\n    retention: { last: ${keep[name]} }\n`);
  return yaml;
}

describe('prune at s3, sftp and rsync', () => {
  it('deletes for real, each destination by its own retention; --dry-run lists exactly what prune removes; the --json shape when it deletes', async () => {
    const dataDir = path.join(work, 'data');
    await makeData(dataDir, 64 * 1024);
    const dest: DestinationSpec = { offsite: { server: s3 }, vault: { server: sshd }, mirror: { server: sshd } };
    await writeRc(work, rcWith(dataDir, dest, { backupRoot: 4, offsite: 1, vault: 2, mirror: 3 }));
    const env = secretEnv(dest);
    const outputs: Record<string, string> = {};
    const cli = async (args: string[], day: number): Promise<CliResult> => {
      const r = await runCli(args, { cwd: work, env: { ...env, SUTAZAI_BACKUP_NOW: `2026-11-0${day}T02:00:00Z` }, timeoutMs: 300_000 });
      outputs[`${day}: ${args.join(' ')}`] = cliText(r);
      return r;
    };
    const roots = storageRoots(dest);
    /** The snapshots whose files a server holds on disk (any object at all counts). */
    const onServer = async (name: (typeof REMOTES)[number], ids: string[]) => {
      const out: string[] = [];
      for (const id of ids) if ((await storedObjects(roots[name]!, id)).length) out.push(id);
      return out;
    };

    const ids: string[] = [];
    for (let day = 1; day <= 4; day++) {
      const run = await cli(['run', '--json'], day);
      expect(run.code, run.stderr).toBe(0);
      ids.push(run.json().snapshot);
      // Each destination holds the newest `last` snapshots; the older ones are gone from the server's disk.
      expect(await onServer('offsite', ids), `day ${day}`).toEqual(ids.slice(-1));
      expect(await onServer('vault', ids), `day ${day}`).toEqual(ids.slice(-2));
      expect(await onServer('mirror', ids), `day ${day}`).toEqual(ids.slice(-3));
    }
    for (const name of REMOTES) {
      const listed = (await cli(['list', '--from', name, '--json'], 4)).json().map((s: { id: string }) => s.id);
      expect(listed, name).toEqual(ids.slice(-{ offsite: 1, vault: 2, mirror: 3 }[name]));
    }
    // What is left is whole: the artifact and the manifest, no marker.
    for (const name of REMOTES) expect(await storedObjects(roots[name]!, ids[3]!), name).toEqual(['configs.tar.zst', 'manifest.json']);

    // Tighter policies: prune itself deletes at every place.
    await writeRc(work, rcWith(dataDir, dest, { backupRoot: 1, offsite: 1, vault: 1, mirror: 1 }));
    const dry = await cli(['prune', '--dry-run', '--json'], 5);
    expect(dry.code, dry.stderr).toBe(0);
    const plan = dry.json();
    expect(plan.map((r: any) => [r.repository, r.dryRun, r.removed.map((d: any) => d.id)])).toEqual([
      // Newest first, as retention walks them.
      ['backupRoot', true, [ids[2], ids[1], ids[0]]],
      ['destinations.offsite', true, []],
      ['destinations.vault', true, [ids[2]]],
      ['destinations.mirror', true, [ids[2], ids[1]]],
    ]);
    expect(await onServer('mirror', ids)).toEqual(ids.slice(1));

    const prune = await cli(['prune', '--json'], 5);
    expect(prune.code, prune.stderr).toBe(0);
    const results = prune.json();
    expect(results.map((r: any) => [r.repository, r.removed.map((d: any) => d.id)])).toEqual(plan.map((r: any) => [r.repository, r.removed.map((d: any) => d.id)]));
    const mirror = results.find((r: any) => r.repository === 'destinations.mirror');
    expect(mirror).toEqual({
      repository: 'destinations.mirror',
      dryRun: false,
      policy: 'last 1',
      kept: [{ id: ids[3], time: '2026-11-04T02:00:00.000Z', keep: true, reasons: ['newest', 'last 1'] }],
      removed: [
        { id: ids[2], time: '2026-11-03T02:00:00.000Z', keep: false, reasons: [] },
        { id: ids[1], time: '2026-11-02T02:00:00.000Z', keep: false, reasons: [] },
      ],
      suspects: [],
      incomplete: [],
      foreign: [],
      orphans: 0,
    });
    for (const name of REMOTES) expect(await onServer(name, ids), name).toEqual([ids[3]]);
    // Nothing of the deleted snapshots is left behind, not even the marker the deletion wrote first.
    for (const name of ['vault', 'mirror'] as const) {
      for (const id of ids.slice(0, 3)) expect(await storedObjects(roots[name]!, id), `${name} ${id}`).toEqual([]);
    }
    expectNoSecrets(outputs, [S3_SECRET, sshd.keyPassphrase]);
  });
});

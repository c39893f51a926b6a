/**
 * Commands that decrypt nothing run without the encryption secret: a metrics scrape, a health
 * check or a listing on an encrypted repository needs no passphrase. Commands that read or write
 * artifacts still refuse, exit 2, naming the key. Every command here runs under `env -i`.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { CLI_BIN, runCli, tempDir, writeRc } from '../helpers/cli.js';

const PASS = 'correct horse battery staple 42';
let work: string;
let snapshot: string;

/** The CLI with nothing of our environment but PATH: what cron gives a job that sourced no env file. */
function bare(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('env', ['-i', `PATH=${process.env.PATH}`, process.execPath, CLI_BIN, ...args, '--config', path.join(work, '.sutazai-backuprc')], { cwd: work });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  work = await tempDir();
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n' });
  await writeRc(
    work,
    `backupRoot: ./repo
encryption: { use: gpg, passphrase: "\${BACKUP_ENCRYPTION_PASSPHRASE}" }
sources:
  configs: { use: files, paths: [./data] }
destinations:
  drive: { use: local, path: ./drive }
profiles:
  daily: { schedule: "0 2 * * *", sources: "*" }
`,
  );
  const r = await runCli(['run', '--json'], { cwd: work, env: { BACKUP_ENCRYPTION_PASSPHRASE: PASS } });
  expect(r.code, r.stderr).toBe(0);
  snapshot = r.json().snapshot;
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('without the encryption secret', () => {
  it('list, status and metrics work on the encrypted repository (and list --from a destination)', async () => {
    const list = await bare(['list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).map((s: { id: string }) => s.id)).toEqual([snapshot]);
    const fromDrive = await bare(['list', '--from', 'drive', '--json']);
    expect(fromDrive.code, fromDrive.stderr).toBe(0);
    expect(JSON.parse(fromDrive.stdout).map((s: { id: string }) => s.id)).toEqual([snapshot]);

    const status = await bare(['status', '--json']);
    expect([0, 1], status.stderr).toContain(status.code);
    const doc = JSON.parse(status.stdout);
    expect(doc).toMatchObject({ snapshots: 1, latest: snapshot });
    // Still known as encrypted: the repository is not reported as unauthenticated.
    expect(doc.checks.find((c: { name: string }) => c.name === 'authentication')).toMatchObject({ ok: true, detail: expect.stringMatching(/encrypted/) });

    const metrics = await bare(['metrics']);
    expect(metrics.code, metrics.stderr).toBe(0);
    expect(metrics.stdout).toMatch(/^sutazai_backup_snapshots\S* 1$/m);
    for (const r of [list, status, metrics]) expect(r.stderr).not.toMatch(/BACKUP_ENCRYPTION_PASSPHRASE/);
  });

  it('config validate passes and says the encryption options were not checked; schedule and systemd print work', async () => {
    const validate = await bare(['config', 'validate']);
    expect(validate.code, validate.stderr).toBe(0);
    expect(validate.stdout).toContain('note: encryption options not checked: BACKUP_ENCRYPTION_PASSPHRASE not set');
    expect((await bare(['schedule'])).stdout).toMatch(/^0 2 \* \* \* .* run --profile daily --wait 6h /m);
    expect((await bare(['systemd', 'print'])).stdout).toContain('sutazai-backup-daily.timer');
  });

  it('run, verify, restore and restore-test still refuse, exit 2, naming the key; nothing is written', async () => {
    const before = await fsp.readdir(path.join(work, 'repo', 'snapshots'));
    for (const args of [['run'], ['verify'], ['restore', 'latest', '--to', path.join(work, 'out')], ['restore-test'], ['daemon']]) {
      const r = await bare(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('encryption.passphrase: environment variable BACKUP_ENCRYPTION_PASSPHRASE is not set');
    }
    expect(await fsp.readdir(path.join(work, 'repo', 'snapshots'))).toEqual(before);
    await expect(fsp.stat(path.join(work, 'out'))).rejects.toThrow(/ENOENT/);
  });
});

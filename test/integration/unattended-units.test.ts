/**
 * Unattended runs as systemd and cron would start them: the units `systemd print` writes pass
 * `systemd-analyze verify`; the daily unit's ExecStart, run under `env -i` as the unit's User=
 * with a credentials folder holding the passphrase, and the cron line, run under `env -i` by
 * sh as the user of its /etc/cron.d entry, each make an encrypted backup. No systemd runs here
 * (not PID 1): the sandbox settings are checked by systemd-analyze, not enforced.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { CLI_BIN, runCli, tempDir, writeRc } from '../helpers/cli.js';
import { signedWebhook, type Receiver, type WebhookDelivery } from '../helpers/notify-receivers.js';
import { startHttpReceiver, type HttpReceiver } from '../helpers/servers.js';

const USER = 'daemon';
const PASS = 'correct horse battery staple 42';
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

let work: string;
let creds: string;
let http: HttpReceiver;
let hook: Receiver<WebhookDelivery>;

/**
 * The command line run as the unit's user with nothing of our environment: what systemd and cron
 * give a job. Asynchronous: the webhook receiver lives in this process.
 */
function asUser(argv: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn('setpriv', [`--reuid=${USER}`, `--regid=${USER}`, '--clear-groups', 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], { cwd: '/' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

/** The units of `systemd print` output, by file name. */
function splitUnits(text: string): Map<string, string> {
  const units = new Map<string, string>();
  const parts = text.split(/^# \/etc\/systemd\/system\/(\S+)\n/m);
  for (let i = 1; i < parts.length; i += 2) units.set(parts[i]!, parts[i + 1]!.replace(/\n# then: .*\n?$/s, '\n'));
  return units;
}

async function verifyUnits(units: Map<string, string>): Promise<{ code: number | null; stderr: string }> {
  const dir = await tempDir('sutazai-units-');
  for (const [name, text] of units) await fsp.writeFile(path.join(dir, name), text);
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...[...units.keys()].map((n) => path.join(dir, n))], { encoding: 'utf8' });
  await fsp.rm(dir, { recursive: true, force: true });
  return { code: r.status, stderr: r.stderr.trim() };
}

async function snapshots(): Promise<string[]> {
  return (await fsp.readdir(path.join(work, 'repo', 'snapshots')).catch(() => [])).filter((f) => !f.startsWith('.')).sort();
}

/** The snapshot's artifacts are gpg's: the manifest says so and the bytes are not plain zstd. */
async function expectEncrypted(id: string): Promise<void> {
  const manifest = JSON.parse(await fsp.readFile(path.join(work, 'repo', 'snapshots', id, 'manifest.json'), 'utf8'));
  expect(manifest.artifacts).toHaveLength(1);
  expect(manifest.artifacts[0].encryption).toMatchObject({ method: 'gpg' });
  const bytes = await fsp.readFile(path.join(work, 'repo', 'snapshots', id, manifest.artifacts[0].file));
  expect(bytes.subarray(0, 4).equals(ZSTD_MAGIC)).toBe(false);
  const home = await tempDir('sutazai-gnupg-');
  const out = spawnSync('sh', ['-c', 'gpg --batch --quiet --homedir "$H" --pinentry-mode loopback --passphrase "$P" --decrypt "$F" | zstd -d | tar -xO'], {
    env: { ...process.env, H: home, P: PASS, F: path.join(work, 'repo', 'snapshots', id, manifest.artifacts[0].file) },
    encoding: 'utf8',
  });
  await fsp.rm(home, { recursive: true, force: true });
  expect(out.stdout).toBe('alpha\n');
}

beforeAll(async () => {
  hook = signedWebhook('/hook', undefined);
  http = await startHttpReceiver(hook.handler);
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
notify:
  hook: { use: webhook, url: "${http.url}/hook" }
profiles:
  daily:   { schedule: "0 2 * * *", sources: "*" }
  weekly:  { schedule: "0 3 * * 0", sources: "*" }
  monthly: { schedule: "0 4 1 * *", sources: "*" }
checks: { schedule: "*/20 * * * *", restoreTest: { schedule: "0 5 * * 0", from: drive } }
scheduling:
  user: ${USER}
  credentials: { BACKUP_ENCRYPTION_PASSPHRASE: ./secret/passphrase }
`,
  );
  // What systemd makes of LoadCredential=: a folder with one file per credential, readable by the unit's user.
  creds = path.join(work, 'credentials');
  await fsp.mkdir(creds, { mode: 0o700 });
  await fsp.writeFile(path.join(creds, 'BACKUP_ENCRYPTION_PASSPHRASE'), `${PASS}\n`, { mode: 0o400 });
  execFileSync('chown', ['-R', `${USER}:${USER}`, work]);
});

afterAll(async () => {
  await http?.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

describe('systemd print', () => {
  it('writes units that systemd-analyze verifies without a warning: a sandboxed oneshot and a timer per job, and the failure handler', async () => {
    const r = await runCli(['systemd', 'print'], { cwd: work, env: { CREDENTIALS_DIRECTORY: creds } });
    expect(r.code, r.stderr).toBe(0);
    const units = splitUnits(r.stdout);
    expect([...units.keys()].sort()).toEqual(
      ['daily', 'health', 'monthly', 'restore-test', 'weekly'].flatMap((j) => [`sutazai-backup-${j}.service`, `sutazai-backup-${j}.timer`]).concat('sutazai-backup-failure@.service').sort(),
    );
    expect(await verifyUnits(units)).toEqual({ code: 0, stderr: '' });
    const daily = units.get('sutazai-backup-daily.service')!;
    for (const line of [
      `User=${USER}`,
      `LoadCredential=BACKUP_ENCRYPTION_PASSPHRASE:${work}/secret/passphrase`,
      'OnFailure=sutazai-backup-failure@%n.service',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      `ReadWritePaths=-${work}/repo -${work}/drive`,
      'ProtectHome=yes',
      'UMask=0077',
    ]) {
      expect(daily.split('\n'), line).toContain(line);
    }
    // backupRoot is under /tmp here: a private /tmp would hide it, so the unit says why it has none.
    expect(daily).toContain('# PrivateTmp= is off: the config uses a path under /tmp or /var/tmp');
    expect(daily).not.toContain('SuccessExitStatus=75');
    expect(units.get('sutazai-backup-health.service')).toMatch(/^ExecStart=\S+ \S+ status --notify --config /m);
    expect(units.get('sutazai-backup-health.timer')).toContain('OnCalendar=*-*-* *:00/20:00');
    expect(units.get('sutazai-backup-failure@.service')).toMatch(/^ExecStart=\S+ \S+ systemd on-failure --config \S+ %i$/m);
  });

  it('--daemon writes the daemon\'s unit instead of the timers, also verified', async () => {
    const r = await runCli(['systemd', 'print', '--daemon', '--listen', '127.0.0.1:9469'], { cwd: work, env: { CREDENTIALS_DIRECTORY: creds } });
    expect(r.code, r.stderr).toBe(0);
    const units = splitUnits(r.stdout);
    expect([...units.keys()].sort()).toEqual(['sutazai-backup-daemon.service', 'sutazai-backup-failure@.service']);
    expect(await verifyUnits(units)).toEqual({ code: 0, stderr: '' });
    const daemon = units.get('sutazai-backup-daemon.service')!;
    expect(daemon).toMatch(/^ExecStart=\S+ \S+ daemon --listen 127\.0\.0\.1:9469 --config \S+$/m);
    expect(daemon.split('\n')).toEqual(expect.arrayContaining(['KillMode=mixed', 'Restart=on-failure', 'WantedBy=multi-user.target', `User=${USER}`]));
  });

  it('a unit the verifier refuses is caught: the check can fail', async () => {
    const r = await runCli(['systemd', 'print'], { cwd: work, env: { CREDENTIALS_DIRECTORY: creds } });
    const units = splitUnits(r.stdout);
    units.set('sutazai-backup-daily.service', units.get('sutazai-backup-daily.service')!.replace('ProtectHome=yes', 'ProtectHome=maybe'));
    expect((await verifyUnits(units)).stderr).toMatch(/Failed to parse protect home value/);
  });

  it('under env -i, the daily unit\'s ExecStart as its User= with a credentials folder makes an encrypted backup; the passphrase is logged nowhere', async () => {
    const r = await runCli(['systemd', 'print'], { cwd: work, env: { CREDENTIALS_DIRECTORY: creds } });
    const exec = /^ExecStart=(.*)$/m.exec(splitUnits(r.stdout).get('sutazai-backup-daily.service')!)![1]!.split(' ');
    const before = await snapshots();
    const run = await asUser(exec, { CREDENTIALS_DIRECTORY: creds });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr + run.stdout).not.toContain(PASS);
    const added = (await snapshots()).filter((s) => !before.includes(s));
    expect(added).toEqual([expect.stringMatching(/-daily-/)]);
    await expectEncrypted(added[0]!);
    // Without the credential the same line is a config error naming the key, exit 2: no half run.
    const bare = await asUser(exec);
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/encryption\.passphrase: environment variable BACKUP_ENCRYPTION_PASSPHRASE is not set/);
  });
});

describe('schedule (cron)', () => {
  it('under env -i, the /etc/cron.d line sources its env file (0600) and makes an encrypted backup as its user', async () => {
    const envFile = path.join(work, 'backup.env');
    await fsp.writeFile(envFile, `BACKUP_ENCRYPTION_PASSPHRASE='${PASS}'\n`, { mode: 0o600 });
    execFileSync('chown', [`${USER}:${USER}`, envFile]);
    const r = await runCli(['schedule', '--system', '--env-file', envFile], { cwd: work, env: { CREDENTIALS_DIRECTORY: creds } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('SHELL=/bin/sh');
    const line = r.stdout.split('\n').find((l) => l.includes('--profile daily'))!;
    const [minute, hour, dom, month, dow, user, ...command] = line.split(' ');
    expect([minute, hour, dom, month, dow, user]).toEqual(['0', '2', '*', '*', '*', USER]);
    expect(command.join(' ')).toMatch(new RegExp(`^set -a && \\. ${envFile} && set \\+a && exec \\S+ \\S+ run --profile daily --wait 6h --config \\S+  # back up profile daily$`));
    const before = await snapshots();
    // cron hands the line to /bin/sh, turning \% back into %.
    const run = await asUser(['/bin/sh', '-c', command.join(' ').replace(/\\%/g, '%')]);
    expect(run.status, run.stderr).toBe(0);
    const added = (await snapshots()).filter((s) => !before.includes(s));
    expect(added).toHaveLength(1);
    await expectEncrypted(added[0]!);
  });

  it('warns when the env file can be read by others', async () => {
    const envFile = path.join(work, 'shared.env');
    await fsp.writeFile(envFile, `BACKUP_ENCRYPTION_PASSPHRASE='${PASS}'\n`, { mode: 0o644 });
    const r = await runCli(['schedule', '--env-file', envFile], { cwd: work, env: { CREDENTIALS_DIRECTORY: creds } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`# WARNING: ${envFile} holds secrets and is mode 0644: run \`chmod 600 ${envFile}\``);
    expect(r.stderr).toContain('is mode 0644');
  });
});

describe('systemd on-failure', () => {
  it('alerts and records a missed run when a unit was killed; stays quiet when the run reported its own failure', async () => {
    const sent = hook.accepted.length;
    // The handler runs as the failed unit did: its User=, its credentials, and what systemd passes in MONITOR_*.
    const onFailure = (monitor: Record<string, string>) =>
      asUser([process.execPath, CLI_BIN, 'systemd', 'on-failure', 'sutazai-backup-daily.service', '--config', path.join(work, '.sutazai-backuprc')], { CREDENTIALS_DIRECTORY: creds, ...monitor });
    const killed = await onFailure({ MONITOR_SERVICE_RESULT: 'signal', MONITOR_EXIT_CODE: 'killed', MONITOR_EXIT_STATUS: 'KILL' });
    expect(killed.status, killed.stderr).toBe(0);
    expect(hook.accepted.slice(sent).map((d) => [d.body.event, d.body.title, d.body.lines])).toEqual([
      ['failure', expect.stringMatching(/^backup FAILED: \S+ \/ daily$/), ['the run failed at unit: systemd unit sutazai-backup-daily.service signal: killed by KILL; see journalctl -u sutazai-backup-daily.service']],
    ]);
    const history = (await fsp.readFile(path.join(work, 'repo', 'state', 'history.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(history.at(-1)).toMatchObject({ kind: 'run', status: 'failed', missed: true, profile: 'daily', errors: [{ stage: 'unit', code: 'E_INTERNAL' }] });

    const reported = await onFailure({ MONITOR_SERVICE_RESULT: 'exit-code', MONITOR_EXIT_CODE: 'exited', MONITOR_EXIT_STATUS: '1' });
    expect(reported.status, reported.stderr).toBe(0);
    expect(reported.stdout).toContain('already reported by the run');
    expect(hook.accepted.length).toBe(sent + 1);
  });
});

/**
 * `${VAR}` from systemd's credentials: `$CREDENTIALS_DIRECTORY/VAR` when the variable is not in
 * the environment; and the rc keys of unattended runs (`scheduling:`, `checks.schedule`).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { loadConfig } from '../src/config.js';
import { SecretRegistry } from '../src/secrets.js';
import { healthSchedule, schedulingOptions } from '../src/scheduling-config.js';

let dir: string;
let creds: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-credentials-'));
  creds = path.join(dir, 'credentials');
  await fsp.mkdir(creds, { mode: 0o700 });
  await fsp.writeFile(path.join(dir, 'probe.mjs'), `export default function () { return { name: 'probe', apply() {} }; }\n`);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function load(yaml: string, env: NodeJS.ProcessEnv, secrets = new SecretRegistry()) {
  await fsp.writeFile(path.join(dir, '.sutazai-backuprc'), yaml);
  return loadConfig({ cwd: dir, env, secrets });
}

const rc = 'backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs, note: "${BACKUP_NOTE}" }\n';

describe('${VAR} from $CREDENTIALS_DIRECTORY', () => {
  it('reads the credential file when the variable is not in the environment, without its trailing newline, as a secret', async () => {
    await fsp.writeFile(path.join(creds, 'BACKUP_NOTE'), 'from-the-credential-file\n', { mode: 0o600 });
    const secrets = new SecretRegistry();
    const config = await load(rc, { CREDENTIALS_DIRECTORY: creds }, secrets);
    expect(config.sources[0]!.options.note).toBe('from-the-credential-file');
    // Registered as a secret although neither its name nor its key looks like one.
    expect(secrets.redact('note: from-the-credential-file')).toBe('note: ***');
  });

  it('the environment wins over a credential; an empty variable is still "not set"', async () => {
    await fsp.writeFile(path.join(creds, 'BACKUP_NOTE'), 'credential', { mode: 0o600 });
    expect((await load(rc, { CREDENTIALS_DIRECTORY: creds, BACKUP_NOTE: 'environment' })).sources[0]!.options.note).toBe('environment');
    await expect(load(rc, { CREDENTIALS_DIRECTORY: creds, BACKUP_NOTE: '' })).rejects.toThrow(/environment variable BACKUP_NOTE is not set/);
  });

  it('a missing credential file is a missing variable; without CREDENTIALS_DIRECTORY nothing is read', async () => {
    await expect(load(rc, { CREDENTIALS_DIRECTORY: creds })).rejects.toThrow(/sources\.one\.note: environment variable BACKUP_NOTE is not set/);
    await fsp.writeFile(path.join(creds, 'BACKUP_NOTE'), 'x-credential', { mode: 0o600 });
    await expect(load(rc, {})).rejects.toThrow(/BACKUP_NOTE is not set/);
  });

  it('a link or a folder at the credential\'s name is refused with a config error naming it', async () => {
    await fsp.writeFile(path.join(dir, 'elsewhere'), 'planted');
    await fsp.symlink(path.join(dir, 'elsewhere'), path.join(creds, 'BACKUP_NOTE'));
    await expect(load(rc, { CREDENTIALS_DIRECTORY: creds })).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringContaining(`\${BACKUP_NOTE}: the credential ${creds}/BACKUP_NOTE cannot be read`) });
    await fsp.rm(path.join(creds, 'BACKUP_NOTE'));
    await fsp.mkdir(path.join(creds, 'BACKUP_NOTE'));
    await expect(load(rc, { CREDENTIALS_DIRECTORY: creds })).rejects.toThrow('not a regular file');
  });
});

describe('scheduling: and checks.schedule', () => {
  it('are read with paths from the rc file\'s folder and a 6h wait by default', async () => {
    const config = await load(
      `backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs }\nchecks: { schedule: "17 * * * *" }\nscheduling:\n  user: backup\n  envFile: ./backup.env\n  credentials: { BACKUP_PASS: /etc/credstore/pass }\n  readWritePaths: [./spool]\n`,
      {},
    );
    expect(schedulingOptions(config)).toEqual({
      user: 'backup',
      envFile: path.join(dir, 'backup.env'),
      credentials: { BACKUP_PASS: '/etc/credstore/pass' },
      waitMs: 6 * 3600_000,
      readWritePaths: [path.join(dir, 'spool')],
    });
    expect(healthSchedule(config)).toBe('17 * * * *');
    const plain = await load('backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs }\nscheduling: { wait: 90min }\n', {});
    expect(schedulingOptions(plain).waitMs).toBe(90 * 60_000);
    expect(healthSchedule(plain)).toBeUndefined();
  });

  it('a bad value is a config error naming the key', async () => {
    const err = (await load('backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs }\nchecks: { schedule: "hourly" }\nscheduling: { wait: soon, user: "no body", credentials: { "a/b": x }, shell: bash }\n', {}).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues.map((i) => i.path).sort()).toEqual(['checks.schedule', 'scheduling.credentials.a/b', 'scheduling.shell', 'scheduling.user', 'scheduling.wait']);
    expect(err.message).toMatch(/scheduling\.wait: expected a duration like "6h"/);
  });
});

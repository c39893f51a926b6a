import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { SecretRegistry } from '../src/secrets.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-repo-config-'));
  await fsp.writeFile(path.join(dir, 'probe.mjs'), `export default function () { return { name: 'probe', apply() {} }; }\n`);
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const base = 'backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs }\n';

async function load(yaml: string, env: NodeJS.ProcessEnv = {}, secrets = new SecretRegistry()) {
  await fsp.writeFile(path.join(dir, '.sutazai-backuprc'), base + yaml);
  return loadConfig({ cwd: dir, env, secrets });
}

async function issuesOf(yaml: string): Promise<string[]> {
  const err = await load(yaml).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
}

describe('repository: { format, password }', () => {
  it('defaults to tar; restic takes its password from ${VAR}, a secret nothing prints', async () => {
    expect((await load('')).repository).toEqual({ format: 'tar' });
    const secrets = new SecretRegistry();
    const config = await load('repository: { format: restic, password: "${PW}" }\n', { PW: 'hunter2-long-password' }, secrets);
    expect(config.repository).toEqual({ format: 'restic', password: 'hunter2-long-password' });
    expect(secrets.redact('the password is hunter2-long-password')).not.toContain('hunter2-long-password');
  });

  it('restic without a password names repository.password', async () => {
    expect(await issuesOf('repository: { format: restic }\n')).toEqual([expect.stringMatching(/^repository\.password: format restic needs a password/)]);
  });

  it('restic with encryption or integrity is refused: restic encrypts and authenticates itself', async () => {
    const issues = await issuesOf('repository: { format: restic, password: pw }\nintegrity: { key: "0123456789abcdef0123" }\n');
    expect(issues).toEqual([expect.stringMatching(/^integrity: not used with repository\.format restic/)]);
    const enc = await issuesOf('repository: { format: restic, password: pw }\nencryption: { use: ./probe.mjs }\n');
    expect(enc).toContainEqual(expect.stringMatching(/^encryption: not used with repository\.format restic/));
  });

  it('restic with destinations is a config error until replication of restic repositories lands', async () => {
    const issues = await issuesOf('repository: { format: restic, password: pw }\ndestinations:\n  off: { use: ./probe.mjs }\n');
    expect(issues).toContainEqual(expect.stringMatching(/^destinations: not supported with repository\.format restic yet/));
  });

  it('an unknown format names the key and the choices', async () => {
    expect(await issuesOf('repository: { format: borg }\n')).toEqual([expect.stringMatching(/^repository\.format: .*tar.*restic/)]);
  });
});

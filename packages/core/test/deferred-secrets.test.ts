/**
 * `deferEncryptionSecrets` (commands that decrypt nothing): an unset `${VAR}` under `encryption`
 * is no load error, every other one still is, and an engine loaded so refuses to run, decode or
 * authenticate (it never writes what should have been encrypted in the clear).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Engine } from '../src/engine.js';
import { silentLogger } from '../src/log.js';
import { SecretRegistry } from '../src/secrets.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-deferred-'));
  // A source that would archive one file: what must never be written unencrypted.
  await fsp.mkdir(path.join(dir, 'data'));
  await fsp.writeFile(path.join(dir, 'data', 'a.txt'), 'secret data\n');
  await fsp.writeFile(
    path.join(dir, 'probe.mjs'),
    `export default function () { return { name: 'probe', apply(hooks) { hooks.collect.tapPromise('probe', async ({ addArtifact }) => addArtifact('one', 'probe', { name: 'one', type: 'tree', paths: [${JSON.stringify(path.join(dir, 'data'))}] })); } }; }\n`,
  );
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const rc = (extra = '') => `backupRoot: ./repo\nencryption: { use: ./no-such-plugin.mjs, passphrase: "\${BACKUP_PASS}" }\nsources:\n  one: { use: ./probe.mjs${extra} }\n`;

async function load(yaml: string, defer: boolean) {
  await fsp.writeFile(path.join(dir, '.sutazai-backuprc'), yaml);
  return loadConfig({ cwd: dir, env: {}, secrets: new SecretRegistry(), deferEncryptionSecrets: defer });
}

describe('deferEncryptionSecrets', () => {
  it('lets a config whose encryption secret is not set load, saying which one; without it the load fails', async () => {
    await expect(load(rc(), false)).rejects.toThrow(/encryption\.passphrase: environment variable BACKUP_PASS is not set/);
    const config = await load(rc(), true);
    expect(config.encryption).toMatchObject({ key: 'encryption', kind: 'encryption' });
    expect(config.encryptionSecretsMissing).toEqual([{ path: 'encryption.passphrase', message: expect.stringContaining('BACKUP_PASS is not set') }]);
  });

  it('defers nothing outside encryption', async () => {
    await expect(load(rc(', token: "${SOURCE_TOKEN}"'), true)).rejects.toThrow(/sources\.one\.token: environment variable SOURCE_TOKEN is not set/);
  });

  it('an engine so loaded refuses to run, and writes no snapshot', async () => {
    const engine = new Engine(await load(rc(), true), { logger: silentLogger() });
    await engine.init();
    const outcome = await engine.run().catch((err: Error) => err);
    const text = outcome instanceof Error ? outcome.message : JSON.stringify(outcome.errors);
    expect(text).toMatch(/encryption\.passphrase: environment variable BACKUP_PASS is not set.*this command needs the encryption secret/);
    expect(outcome instanceof Error || outcome.status === 'failed').toBe(true);
    const snapshots = await fsp.readdir(path.join(dir, 'repo', 'snapshots')).catch(() => []);
    expect(snapshots.filter((s) => !s.startsWith('.'))).toEqual([]);
    await engine.close();
  });
});

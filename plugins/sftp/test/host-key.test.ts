import { createHmac, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { isBackupError } from '@sutazai/backup-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type SshServer } from '../../../test/helpers/servers.js';
import { fingerprint, parseKnownHosts, SftpDestination, sftpOptions, type SftpOptions } from '../src/index.js';

let server: SshServer;
let n = 0;

beforeAll(async () => {
  server = await startSshd();
});
afterAll(async () => {
  await server?.stop();
});

function destination(options: Partial<SftpOptions>): SftpDestination {
  return new SftpDestination(
    sftpOptions.parse({
      host: server.host,
      port: server.port,
      username: server.user,
      privateKey: server.privateKeyPath,
      knownHosts: server.knownHostsPath,
      path: path.join(server.homeDir, `hostkey-${++n}`),
      ...options,
    }),
    { configDir: server.dir },
  );
}

async function failure(d: SftpDestination): Promise<Error & { code?: string }> {
  try {
    await d.put('a/b', Readable.from([Buffer.from('x')]));
  } catch (err) {
    return err as Error & { code?: string };
  } finally {
    await d.close();
  }
  throw new Error('the upload succeeded');
}

describe('known_hosts parsing', () => {
  const blob = randomBytes(51);
  const key = blob.toString('base64');
  it('matches plain, [host]:port, wildcard and hashed entries, and skips negated ones', () => {
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.5]:2222').digest('base64')}`;
    const text = [
      '# comment',
      `example.com,10.0.0.1 ssh-ed25519 ${key}`,
      `[10.0.0.1]:2222 ssh-ed25519 ${key} with comment`,
      `*.lan,!evil.lan ssh-rsa ${key}`,
      `${hashed} ecdsa-sha2-nistp256 ${key}`,
      `@revoked revoked.example ssh-ed25519 ${key}`,
    ].join('\n');
    expect(parseKnownHosts(text, 'example.com', 22).map((k) => k.type)).toEqual(['ssh-ed25519']);
    expect(parseKnownHosts(text, '10.0.0.1', 2222).map((k) => k.line)).toEqual([3]);
    expect(parseKnownHosts(text, '10.0.0.1', 22).map((k) => k.line)).toEqual([2]);
    expect(parseKnownHosts(text, 'nas.lan', 22).map((k) => k.type)).toEqual(['ssh-rsa']);
    expect(parseKnownHosts(text, 'evil.lan', 22)).toEqual([]);
    expect(parseKnownHosts(text, '10.0.0.5', 2222).map((k) => k.type)).toEqual(['ecdsa-sha2-nistp256']);
    expect(parseKnownHosts(text, 'revoked.example', 22)[0]?.revoked).toBe(true);
    expect(fingerprint(blob)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('sftp host-key checking and login (OpenSSH sshd on loopback)', () => {
  it('accepts the server whose key is pinned with hostKey', async () => {
    const d = destination({ knownHosts: undefined, hostKey: server.hostKeyFingerprint });
    await d.put('pinned/ok', Readable.from([Buffer.from('ok')]));
    expect((await d.stat('pinned/ok'))?.size).toBe(2);
    await d.close();
  });

  it('refuses a pinned fingerprint that does not match, naming both, and sends nothing', async () => {
    const wrong = fingerprint(randomBytes(51));
    const err = await failure(destination({ knownHosts: undefined, hostKey: wrong }));
    expect(isBackupError(err) && err.code).toBe('E_AUTH');
    expect(err.message).toContain(server.hostKeyFingerprint);
    expect(err.message).toContain(wrong);
    expect(await fsp.readdir(server.homeDir)).not.toContain(`hostkey-${n}`);
  });

  it('refuses a server missing from known_hosts and says how to add it', async () => {
    const empty = path.join(server.dir, `known_hosts_empty_${n}`);
    await fsp.writeFile(empty, '');
    const err = await failure(destination({ knownHosts: empty }));
    expect(isBackupError(err) && err.code).toBe('E_AUTH');
    expect(err.message).toMatch(/is unknown/);
    expect(err.message).toContain(server.hostKeyFingerprint);
    expect(err.message).toContain(`ssh-keyscan -p ${server.port}`);
  });

  it('a wrong passphrase or a missing one is a clear E_AUTH error, without the passphrase in it', async () => {
    const wrong = await failure(destination({ privateKey: server.encryptedKeyPath, passphrase: 'not-the-passphrase' }));
    expect(isBackupError(wrong) && wrong.code).toBe('E_AUTH');
    expect(wrong.message).toMatch(/cannot use the privateKey.*passphrase/);
    expect(wrong.message).not.toContain('not-the-passphrase');
    const missing = await failure(destination({ privateKey: server.encryptedKeyPath }));
    expect(missing.message).toMatch(/encrypted: set passphrase/);
  });

  it('logs in with the encrypted key and its passphrase, or with the key text itself', async () => {
    const withPassphrase = destination({ privateKey: server.encryptedKeyPath, passphrase: server.keyPassphrase });
    await withPassphrase.put('k/1', Readable.from([Buffer.from('1')]));
    await withPassphrase.close();
    const inline = destination({ privateKey: await fsp.readFile(server.privateKeyPath, 'utf8') });
    await inline.put('k/2', Readable.from([Buffer.from('2')]));
    expect((await inline.list('k/')).map((o) => o.key)).toEqual(['k/2']);
    await inline.close();
  });

  it('a password login the server refuses is E_AUTH', async () => {
    const err = await failure(destination({ privateKey: undefined, password: 'hunter2-not-accepted' }));
    expect(isBackupError(err) && err.code).toBe('E_AUTH');
    expect(err.message).toMatch(/login as .* failed \(password\)/);
    expect(err.message).not.toContain('hunter2-not-accepted');
  });
});

import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { isBackupError } from '@sutazai/backup-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type SshServer } from '../../../test/helpers/servers.js';
import { parseListing, parseTarget, RsyncDestination, rsyncOptions } from '../src/index.js';

describe('rsync target and listing parsing', () => {
  it('reads user@host:path as ssh and anything with a slash before a colon as local', () => {
    expect(parseTarget('backup@nas.lan:/volume1/b/')).toEqual({ remote: { login: 'backup@nas.lan', host: 'nas.lan' }, root: '/volume1/b' });
    expect(parseTarget('nas:backups')).toEqual({ remote: { login: 'nas', host: 'nas' }, root: 'backups' });
    expect(parseTarget('u@[fe80::1]:')).toEqual({ remote: { login: 'u@[fe80::1]', host: 'fe80::1' }, root: '.' });
    expect(parseTarget('/mnt/a:b/')).toEqual({ root: '/mnt/a:b' });
    expect(parseTarget('./rel:x')).toEqual({ root: './rel:x' });
  });

  it('parses --list-only output, with octal escapes and unicode names', () => {
    const entries = parseListing(
      [
        'drwx------           4096 2026/11/26 05:59:25 .',
        '-rw-------           5000 2026/11/26 05:59:25 a/big',
        '-rw-------              0 2026/01/02 03:04:05 a/new\\#012line',
        '-rw-------              5 2026/11/26 05:59:25 a/b/f ü 日本.txt',
        '-rw-------          1,234 2026/11/26 05:59:25  leading space',
        'lrwxrwxrwx              4 2026/11/26 05:59:25 link -> target',
      ].join('\n'),
    );
    expect(entries.map((e) => [e.type, e.name, e.size])).toEqual([
      ['d', '.', 4096],
      ['-', 'a/big', 5000],
      ['-', 'a/new\nline', 0],
      ['-', 'a/b/f ü 日本.txt', 5],
      ['-', ' leading space', 1234],
      ['l', 'link', 4],
    ]);
    expect(entries[2]!.modified).toEqual(new Date(2026, 0, 2, 3, 4, 5));
  });

  it('refuses the names rsync reserves, and ssh options for a local folder', async () => {
    const d = new RsyncDestination(rsyncOptions.parse({ target: '/tmp/unused-rsync-target' }), { configDir: '/tmp' });
    await expect(d.put('a/.rsync-partial/x', Readable.from([Buffer.from('x')]))).rejects.toThrow(/reserves/);
    expect(() => rsyncOptions.parse({ target: '/mnt/x', privateKey: '/k' })).toThrow(/only applies to a user@host:path target/);
  });
});

describe('rsync over ssh: host keys (OpenSSH sshd on loopback)', () => {
  let server: SshServer;
  beforeAll(async () => {
    server = await startSshd({ user: 'sutazai-test' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('refuses a server missing from known_hosts with E_AUTH and sends nothing', async () => {
    const empty = path.join(server.dir, 'known_hosts_empty');
    await fsp.writeFile(empty, '');
    const d = new RsyncDestination(
      rsyncOptions.parse({ target: `${server.user}@${server.host}:${server.homeDir}/unknown`, port: server.port, privateKey: server.privateKeyPath, knownHosts: empty }),
      { configDir: server.dir },
    );
    const err = await d.put('a/b', Readable.from([Buffer.from('x')])).then(
      () => undefined,
      (e: Error) => e,
    );
    await d.close();
    expect(err && isBackupError(err) && err.code).toBe('E_AUTH');
    expect(err!.message).toMatch(/host key of \[127\.0\.0\.1\]:\d+ is unknown/);
    expect(await fsp.readdir(server.homeDir)).not.toContain('unknown');
  });
});

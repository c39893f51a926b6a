// Proves that the loopback test servers are real: real clients talk to them over TCP.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  freePort,
  startHttpReceiver,
  startPostgres,
  startS3,
  startSmtp,
  startSshd,
  type PostgresServer,
  type S3Server,
  type SshServer,
} from './servers.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('freePort', () => {
  it('returns a port that can be bound on 127.0.0.1', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => srv.close(resolve));
  });
});

describe('startPostgres', () => {
  let server: PostgresServer | undefined;
  afterAll(async () => server?.stop());

  it('accepts the password, rejects a wrong one, and stop() removes everything', async () => {
    const started = Date.now();
    server = await startPostgres();
    const pgServer = server;
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(pgServer.url).toBe(`postgres://postgres:${encodeURIComponent(pgServer.password)}@127.0.0.1:${pgServer.port}/postgres`);

    const client = new pg.Client({ connectionString: pgServer.url });
    await client.connect();
    const { rows } = await client.query<{ v: string }>('select version() as v');
    expect(rows[0]?.v).toMatch(/^PostgreSQL \d+/);
    await client.end();

    const wrong = new pg.Client({ host: pgServer.host, port: pgServer.port, user: 'postgres', password: 'not-the-password', database: 'postgres' });
    wrong.on('error', () => undefined);
    await expect(wrong.connect()).rejects.toMatchObject({ code: '28P01' });
    await wrong.end().catch(() => undefined);

    // psql helper and the env for child processes
    await pgServer.psql('create database demo; ');
    await pgServer.psql('create table t (id int, name text); insert into t values (1, $$a$$), (2, $$b$$);', 'demo');
    expect(await pgServer.psql('select id, name from t order by id', 'demo')).toBe('1|a\n2|b\n');
    await expect(pgServer.psql('select * from missing_table')).rejects.toThrow(/missing_table/);
    const dump = await exec(path.join(pgServer.binDir, 'pg_dump'), ['-d', 'demo', '-t', 't'], { ...process.env, ...pgServer.env });
    expect(dump.stderr).toBe('');
    expect(dump.stdout).toContain('CREATE TABLE public.t');

    // only loopback TCP, and the socket lives in the temp folder
    expect(await pgServer.psql("select current_setting('listen_addresses')")).toBe('127.0.0.1\n');
    expect(fs.readdirSync(path.join(pgServer.dir, 'sock')).some((f) => f.startsWith('.s.PGSQL.'))).toBe(true);

    await pgServer.stop();
    expect(fs.existsSync(pgServer.dir)).toBe(false);
    const after = new pg.Client({ connectionString: pgServer.url, connectionTimeoutMillis: 2_000 });
    after.on('error', () => undefined);
    await expect(after.connect()).rejects.toThrow();
  });
});

describe('startSshd', () => {
  let server: SshServer | undefined;
  afterAll(async () => server?.stop());

  it('logs in with the key, checks the host key, rotates it and drops connections', async () => {
    server = await startSshd();
    const ssh = server;
    const target = `${ssh.user}@127.0.0.1`;

    // The exact command from the brief.
    const ok = await exec('ssh', [
      '-F', '/dev/null', '-o', 'BatchMode=yes', '-i', ssh.privateKeyPath, '-p', String(ssh.port),
      '-o', `UserKnownHostsFile=${ssh.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', target, 'true',
    ]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);

    // Files land in homeDir; sftp works (internal-sftp).
    const put = await exec('ssh', [...ssh.sshArgs, target, `echo hello > ${ssh.homeDir}/greeting`]);
    expect(put.code, put.stderr).toBe(0);
    expect(fs.readFileSync(path.join(ssh.homeDir, 'greeting'), 'utf8')).toBe('hello\n');
    const batch = path.join(ssh.dir, 'sftp-batch');
    fs.writeFileSync(batch, `get ${ssh.homeDir}/greeting ${ssh.dir}/fetched\nls ${ssh.homeDir}\n`);
    const sftpArgs = ssh.sshArgs.map((a) => (a === '-p' ? '-P' : a));
    const sftp = await exec('sftp', [...sftpArgs, '-b', batch, target]);
    expect(sftp.code, sftp.stderr).toBe(0);
    expect(fs.readFileSync(path.join(ssh.dir, 'fetched'), 'utf8')).toBe('hello\n');

    // The encrypted key opens only with its passphrase, and the server accepts it.
    const good = await exec('ssh-keygen', ['-y', '-P', ssh.keyPassphrase, '-f', ssh.encryptedKeyPath]);
    expect(good.code).toBe(0);
    expect(fs.readFileSync(path.join(ssh.dir, 'authorized_keys'), 'utf8')).toContain(good.stdout.trim().split(' ')[1]);
    const bad = await exec('ssh-keygen', ['-y', '-P', 'wrong', '-f', ssh.encryptedKeyPath]);
    expect(bad.code).not.toBe(0);
    const noKey = await exec('ssh', ['-i', ssh.encryptedKeyPath, ...ssh.sshArgs.filter((a) => a !== ssh.privateKeyPath && a !== '-i'), target, 'true']);
    expect(noKey.code).toBe(255); // BatchMode: no passphrase prompt, so no login

    // Host key facts agree with ssh-keygen.
    const listed = await exec('ssh-keygen', ['-l', '-f', ssh.knownHostsPath]);
    expect(listed.stdout).toContain(ssh.hostKeyFingerprint);
    expect(ssh.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(fs.readFileSync(ssh.knownHostsPath, 'utf8')).toBe(`[127.0.0.1]:${ssh.port} ${ssh.hostPublicKey}\n`);

    // dropConnections() kills a live session but leaves the listener up.
    const long = exec('ssh', [...ssh.sshArgs, target, 'sleep 60']);
    for (let i = 0; i < 100 && !(await sessionRunning(ssh)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await ssh.dropConnections()).toBeGreaterThan(0);
    const dropped = await long;
    expect(dropped.code).toBe(255);
    expect((await exec('ssh', [...ssh.sshArgs, target, 'true'])).code).toBe(0);

    // rotateHostKey(): same port, new key; the old known_hosts no longer matches.
    const oldFingerprint = ssh.hostKeyFingerprint;
    await ssh.rotateHostKey();
    expect(ssh.hostKeyFingerprint).not.toBe(oldFingerprint);
    const changed = await exec('ssh', [...ssh.sshArgs, target, 'true']);
    expect(changed.code).toBe(255);
    expect(changed.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    const fresh = path.join(ssh.dir, 'known_hosts_new');
    fs.writeFileSync(fresh, `[127.0.0.1]:${ssh.port} ${ssh.hostPublicKey}\n`);
    const again = await exec('ssh', ['-o', `UserKnownHostsFile=${fresh}`, ...ssh.sshArgs, target, 'true']) // ssh keeps the first value of an option;
    expect(again.code, again.stderr).toBe(0);

    await ssh.stop();
    expect(fs.existsSync(ssh.dir)).toBe(false);
    const gone = await exec('ssh', [...ssh.sshArgs, target, 'true']);
    expect(gone.stderr).toMatch(/Connection refused/);
  });
});

/** True when the sshd listener has a "sleep" session below it. */
async function sessionRunning(ssh: SshServer): Promise<boolean> {
  const r = await exec('ps', ['-eo', 'args=']);
  return r.stdout.includes('sleep 60') && r.stdout.split('\n').some((l) => l.includes(`sshd: ${ssh.user}`));
}

describe('startS3', () => {
  let server: S3Server | undefined;
  afterAll(async () => server?.stop());

  it('stores and serves objects, and restart() really cuts connections', async () => {
    server = await startS3({ buckets: ['pre-made'] });
    const s3 = server;
    expect(s3.endpoint).toBe(`http://127.0.0.1:${s3.port}`);
    await s3.createBucket('backups');

    const list = await fetch(`${s3.endpoint}/`);
    const listXml = await list.text();
    expect(listXml).toContain('<Name>backups</Name>');
    expect(listXml).toContain('<Name>pre-made</Name>');

    const put = await fetch(`${s3.endpoint}/backups/host/a.txt`, { method: 'PUT', body: 'hello s3' });
    expect(put.status).toBe(200);
    const get = await fetch(`${s3.endpoint}/backups/host/a.txt`);
    expect(get.status).toBe(200);
    expect(await get.text()).toBe('hello s3');
    expect((await fetch(`${s3.endpoint}/nope/a.txt`)).status).toBe(404);

    // An upload in flight fails when the server goes away.
    const upload = new Promise<string>((resolve) => {
      const req = http.request(`${s3.endpoint}/backups/big.bin`, { method: 'PUT', headers: { 'content-length': String(10 * 1024 * 1024) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(`status ${res.statusCode}`));
      });
      req.on('error', (e) => resolve(`error ${e.message}`));
      req.write(Buffer.alloc(64 * 1024));
    });
    await new Promise((r) => setTimeout(r, 100));
    await s3.pause();
    expect(await upload).toMatch(/^error /);
    await expect(fetch(`${s3.endpoint}/backups/host/a.txt`)).rejects.toThrow();

    await s3.resume();
    expect(await (await fetch(`${s3.endpoint}/backups/host/a.txt`)).text()).toBe('hello s3');
    await s3.restart(50);
    expect(await (await fetch(`${s3.endpoint}/backups/host/a.txt`)).text()).toBe('hello s3');

    await s3.stop();
    expect(fs.existsSync(s3.directory)).toBe(false);
    await expect(fetch(`${s3.endpoint}/`)).rejects.toThrow();
  });
});

/** A minimal SMTP client: sends `commands` one by one and returns every reply. */
async function smtpDialogue(port: number, commands: string[]): Promise<string[]> {
  const sock = net.connect({ host: '127.0.0.1', port });
  sock.setEncoding('utf8');
  let buffer = '';
  const waiters: Array<(reply: string) => void> = [];
  const replies: string[] = [];
  sock.on('data', (chunk: string) => {
    buffer += chunk;
    // a reply ends with a line "NNN text" (no dash after the code)
    for (;;) {
      const m = /(?:^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(buffer);
      if (!m) break;
      const end = m.index + m[0].length;
      const reply = buffer.slice(0, end).replace(/^\r\n/, '');
      buffer = buffer.slice(end);
      waiters.shift()?.(reply);
    }
  });
  const next = () => new Promise<string>((resolve) => waiters.push(resolve));
  replies.push(await next()); // greeting
  for (const cmd of commands) {
    const reply = next();
    sock.write(`${cmd}\r\n`);
    replies.push(await reply);
  }
  sock.end();
  return replies;
}

describe('startSmtp', () => {
  it('receives a mail sent with a raw SMTP dialogue', async () => {
    const smtp = await startSmtp();
    try {
      const replies = await smtpDialogue(smtp.port, [
        'EHLO client.test',
        'MAIL FROM:<backup@example.com>',
        'RCPT TO:<ops@example.com>',
        'RCPT TO:<oncall@example.com>',
        'DATA',
        'Subject: backup failed\r\nFrom: backup@example.com\r\n\r\nsnapshot 1 failed\r\n.',
        'QUIT',
      ]);
      expect(replies[0]).toMatch(/^220 /);
      expect(replies[1]).not.toContain('STARTTLS');
      expect(replies[5]).toMatch(/^354 /);
      expect(replies[6]).toMatch(/^250 /);
      await smtp.waitForMessages(1);
      expect(smtp.messages).toHaveLength(1);
      expect(smtp.messages[0]).toMatchObject({ from: 'backup@example.com', to: ['ops@example.com', 'oncall@example.com'] });
      expect(smtp.messages[0]?.raw).toContain('Subject: backup failed');
      expect(smtp.messages[0]?.raw).toContain('snapshot 1 failed');
    } finally {
      await smtp.stop();
    }
  });

  it('checks credentials when auth is on', async () => {
    const smtp = await startSmtp({ auth: true });
    try {
      expect(smtp.user).toBeTruthy();
      const plain = (u: string, p: string) => Buffer.from(`\0${u}\0${p}`).toString('base64');
      const bad = await smtpDialogue(smtp.port, ['EHLO c', `AUTH PLAIN ${plain(smtp.user!, 'wrong')}`, 'QUIT']);
      expect(bad[2]).toMatch(/^535 /);
      const noAuth = await smtpDialogue(smtp.port, ['EHLO c', 'MAIL FROM:<a@example.com>', 'QUIT']);
      expect(noAuth[2]).toMatch(/^530 /);
      const good = await smtpDialogue(smtp.port, [
        'EHLO c',
        `AUTH PLAIN ${plain(smtp.user!, smtp.password!)}`,
        'MAIL FROM:<a@example.com>',
        'RCPT TO:<b@example.com>',
        'DATA',
        'Subject: hi\r\n\r\nbody\r\n.',
        'QUIT',
      ]);
      expect(good[2]).toMatch(/^235 /);
      expect(good[6]).toMatch(/^250 /);
      expect((await smtp.waitForMessages(1))[0]?.to).toEqual(['b@example.com']);
    } finally {
      await smtp.stop();
    }
  });
});

describe('startHttpReceiver', () => {
  it('records requests and answers with the handler reply', async () => {
    const rx = await startHttpReceiver((req) => (req.path.startsWith('/fail') ? { status: 503, body: { error: 'down' } } : undefined));
    try {
      const ok = await fetch(`${rx.url}/hook?x=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
      expect(ok.status).toBe(200);
      const fail = await fetch(`${rx.url}/fail`, { method: 'POST', body: 'x' });
      expect(fail.status).toBe(503);
      expect(await fail.json()).toEqual({ error: 'down' });
      expect(rx.requests).toHaveLength(2);
      expect(rx.requests[0]).toMatchObject({ method: 'POST', path: '/hook?x=1', body: '{"a":1}' });
      expect(rx.requests[0]?.headers['content-type']).toBe('application/json');
    } finally {
      await rx.stop();
    }
  });
});

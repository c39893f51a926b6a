/**
 * Core's one child runner (packages/core/src/child/launch.ts) and the shapes built on it:
 * startChild/runChild, ProgramStream/runProgram. Real programs (sh, cat, sleep), no mocks.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { launchChild, ProgramStream, runChild, runProgram, startChild, STDERR_TAIL_BYTES } from '../src/child.js';
import { createLogger } from '../src/log.js';
import { SecretRegistry } from '../src/secrets.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Whether a process runs (a zombie waiting for its parent to reap it does not). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function collect(stream: Readable & NodeJS.ReadWriteStream, input?: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await pipeline(Readable.from(input ? [input] : []), stream, sink);
  return Buffer.concat(chunks);
}

describe('launchChild', () => {
  it('keeps the last STDERR_TAIL_BYTES of stderr, whole characters included', async () => {
    // 10,000 lines; the last says why it failed, and a multi-byte character crosses pipe writes.
    const child = launchChild('sh', ['-c', 'i=0; while [ $i -lt 10000 ]; do echo "noise line $i é" >&2; i=$((i+1)); done; echo "the reason" >&2; exit 4']);
    const outcome = await child.outcome;
    expect(outcome.code).toBe(4);
    expect(outcome.stderr.length).toBeLessThanOrEqual(STDERR_TAIL_BYTES);
    expect(outcome.stderr.length).toBeGreaterThan(STDERR_TAIL_BYTES - 30);
    expect(outcome.stderr.trimEnd().endsWith('the reason')).toBe(true);
    expect(outcome.stderr).not.toContain('\uFFFD');
  });

  it('writes extra pipes and closes them, and collects a status pipe', async () => {
    const child = launchChild('sh', ['-c', 'cat <&3; echo "[STATUS] done" >&4'], { inputs: { 3: Buffer.from('on-fd-3') }, statusFd: 4 });
    let out = '';
    child.process.stdout!.on('data', (d: Buffer) => (out += d));
    const outcome = await child.outcome;
    expect(out).toBe('on-fd-3');
    expect(outcome.status).toBe('[STATUS] done\n');
  });

  it('reports a program that is not installed by its error code', async () => {
    const outcome = await launchChild('/nonexistent/sutazai-program', []).outcome;
    expect(outcome.error?.code).toBe('ENOENT');
    await expect(runChild({ path: 'sutazai-no-such-program', name: 'x' }, [], { what: 'probe', code: 'E_SOURCE', secrets: new SecretRegistry() })).rejects.toMatchObject({
      code: 'E_SOURCE',
      details: { spawnError: 'ENOENT' },
    });
  });

  it('waits for the exit alone when asked: a background child holding stderr (ssh -f) does not hold the outcome', async () => {
    const started = Date.now();
    const child = launchChild('sh', ['-c', 'sleep 20 & echo "$!" >&2; exit 3'], { waitFor: 'exit' });
    const outcome = await child.outcome;
    expect(outcome.code).toBe(3);
    expect(Date.now() - started).toBeLessThan(15_000);
    const background = Number(outcome.stderr.trim());
    expect(alive(background)).toBe(true);
    process.kill(background);
  });

  it('stops the whole process group when aborted with group', async () => {
    const abort = new AbortController();
    const child = launchChild('sh', ['-c', 'sleep 30 & echo $! ; wait'], { group: true, signal: abort.signal });
    const grandchild = await new Promise<number>((resolve) => child.process.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    expect(alive(grandchild)).toBe(true);
    abort.abort();
    const outcome = await child.outcome;
    expect(outcome.signal).toBe('SIGTERM');
    await sleep(100);
    expect(alive(grandchild)).toBe(false);
  });

  it('gives the program the minimal environment and what it is passed, and logs the command line redacted', async () => {
    process.env.SUTAZAI_TEST_TOOL_SECRET = 'tool-secret-value';
    try {
      const lines: string[] = [];
      const logger = createLogger({ level: 'debug', stream: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
      const secrets = new SecretRegistry();
      secrets.add('hunter2-password');
      const out = await runChild({ path: 'sh', name: 'sh' }, ['-c', 'env', 'hunter2-password'], { env: { OWN: 'mine' }, what: 'env', code: 'E_SOURCE', secrets, logger });
      const names = out.trim().split('\n').map((l) => l.slice(0, l.indexOf('=')));
      expect(names).toContain('OWN');
      expect(names).toContain('PATH');
      expect(names).not.toContain('SUTAZAI_TEST_TOOL_SECRET');
      expect(lines.join('')).toContain('running sh -c env ***');
      expect(lines.join('')).not.toContain('hunter2');
    } finally {
      delete process.env.SUTAZAI_TEST_TOOL_SECRET;
    }
  });
});

describe('startChild', () => {
  it('fails naming what ran with its stderr tail, redacted', async () => {
    const secrets = new SecretRegistry();
    secrets.add('s3cr3t-token');
    const child = startChild({ path: 'sh', name: 'pg_dump' }, ['-c', 'echo "auth failed for s3cr3t-token" >&2; exit 2'], { what: 'sources.db: pg_dump', code: 'E_SOURCE', secrets });
    await expect(child.exited).rejects.toThrow('sources.db: pg_dump failed: pg_dump exited with code 2: auth failed for ***');
  });
});

describe('ProgramStream', () => {
  const sh = (script: string) =>
    new ProgramStream({ command: 'sh', args: ['-c', script], env: {}, check: (o) => (o.code === 0 ? undefined : new Error(`exit ${o.code}: ${o.stderr.trim()}`)) });

  it('passes bytes through the child and ends when it succeeds', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    expect((await collect(sh('cat'), data)).equals(data)).toBe(true);
  });

  it('errors instead of ending when the child fails after writing everything', async () => {
    const stream = sh('cat; echo "integrity check failed" >&2; exit 2');
    let ended = false;
    stream.on('end', () => (ended = true));
    await expect(collect(stream, Buffer.from('plaintext'))).rejects.toThrow(/exit 2: integrity check failed/);
    expect(ended).toBe(false);
  });

  it('reports the exit status, not EPIPE, when the child stops reading early', async () => {
    await expect(collect(sh('echo "wrong passphrase" >&2; exit 2'), randomBytes(8 * 1024 * 1024))).rejects.toThrow(/exit 2: wrong passphrase/);
  });

  it('kills the child when the stream is destroyed', async () => {
    const stream = sh('echo $$; exec sleep 30');
    const pid = await new Promise<number>((resolve) => stream.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    expect(alive(pid)).toBe(true);
    stream.destroy();
    await sleep(200);
    expect(alive(pid)).toBe(false);
  });

  it('gives extra pipes their bytes (a passphrase on fd 3), never in the arguments, and runProgram returns the output', async () => {
    const out = await runProgram({ command: 'sh', args: ['-c', 'cat <&3; cat'], env: {}, inputs: { 3: Buffer.from('secret-on-fd-3 ') }, input: Buffer.from('stdin'), check: (o) => (o.code === 0 ? undefined : new Error(o.stderr)) });
    expect(out.toString()).toBe('secret-on-fd-3 stdin');
  });
});

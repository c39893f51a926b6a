/**
 * How core takes a file artifact's bytes over from its source (pipeline/source-stream.ts): a
 * program it runs itself, read from the first byte; a stream adopted the moment open() resolves,
 * and refused when someone read it first; and a stage's failures reported once each.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Destination } from '../src/destination.js';
import { BackupError } from '../src/errors.js';
import type { ArtifactSource, FileArtifactSpec } from '../src/hooks.js';
import { silentLogger } from '../src/log.js';
import { lateStreamReason, openSourceOutput } from '../src/pipeline/source-stream.js';
import { rootFailures } from '../src/report.js';
import { Repository } from '../src/repository.js';
import { SecretRegistry } from '../src/secrets.js';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-source-stream-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function spec(open: () => ArtifactSource | Promise<ArtifactSource>): FileArtifactSpec {
  return { type: 'file', name: 'cache', ext: 'rdb', filename: 'dump.rdb', open };
}

function openWith(source: () => ArtifactSource | Promise<ArtifactSource>, secrets = new SecretRegistry()) {
  return openSourceOutput(spec(source), { tempDir: dir, signal: new AbortController().signal, logger: silentLogger() }, { plugin: 'sources.cache', secrets });
}

/** What the pipeline would read, after waiting as long as it likes first. */
async function readLate(stream: Readable, waitMs = 200): Promise<Buffer> {
  await new Promise((r) => setTimeout(r, waitMs));
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A file of `data` and a child that prints it and exits at once. */
async function quickChild(data: Buffer) {
  const file = path.join(dir, `data-${data.length}-${randomBytes(3).toString('hex')}`);
  await fsp.writeFile(file, data);
  return spawn('cat', [file], { stdio: ['ignore', 'pipe', 'ignore'] });
}

describe('a stream open() returns', () => {
  it('is read whole however late the pipeline starts, even when its program exited long before', async () => {
    for (const size of [1, 70_000, 1024 * 1024]) {
      const data = randomBytes(size);
      const output = await openWith(async () => {
        const child = await quickChild(data);
        return { stream: child.stdout!, done: once(child, 'close').then(() => undefined) };
      });
      const read = await readLate(output.stream);
      expect(read.equals(data), `${size} bytes`).toBe(true);
      await output.done;
      output.checkConsumed(read.length);
    }
  });

  it('is refused, naming the source, when its program exited before open() returned it (Node dropped the output)', async () => {
    const data = randomBytes(70_000);
    const failure = await openWith(async () => {
      const child = await quickChild(data);
      const done = once(child, 'close').then(() => undefined);
      await done;
      await tick();
      return { stream: child.stdout!, done };
    }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(BackupError);
    expect(failure).toMatchObject({ code: 'E_SOURCE', plugin: 'sources.cache' });
    // Node resumed the unread stdout when the child exited: its bytes went nowhere.
    expect((failure as Error).message).toMatch(/^sources\.cache: the stream open\(\) returned for cache (had already ended|had already been read from|was flowing with nobody reading it) when the engine got it, so bytes may be missing: nothing of it is stored/);
  });

  it('says why a stream cannot be trusted: read, ended, destroyed, failed, or flowing with nobody reading', async () => {
    expect(lateStreamReason(Readable.from([Buffer.from('x')]))).toBeUndefined();
    const peeked = new PassThrough();
    peeked.end('abc');
    peeked.read(1);
    expect(lateStreamReason(peeked)).toBe('had already been read from');
    const ended = Readable.from([]);
    ended.resume();
    await once(ended, 'end');
    expect(lateStreamReason(ended)).toBe('had already ended');
    const destroyed = new PassThrough();
    destroyed.destroy();
    expect(lateStreamReason(destroyed)).toBe('was already destroyed');
    const failed = new PassThrough();
    failed.on('error', () => undefined);
    failed.destroy(new Error('disk gone'));
    expect(lateStreamReason(failed)).toBe('had failed (disk gone)');
    const resumed = new PassThrough();
    resumed.resume();
    expect(lateStreamReason(resumed)).toBe('was flowing with nobody reading it');
    // Flowing into a listener the source attached itself (a checksum of its own) loses nothing yet.
    const watched = new PassThrough();
    watched.on('data', () => undefined);
    expect(lateStreamReason(watched)).toBeUndefined();
  });

  it('refuses what is neither a program nor a stream', async () => {
    await expect(openWith(() => ({ stream: 'bytes' }) as unknown as ArtifactSource)).rejects.toThrow(
      'sources.cache: open() of cache returned neither { command, args } nor { stream, done }',
    );
  });

  it('fails when its producer fails, even after the stream ended', async () => {
    let fail!: (err: Error) => void;
    const output = await openWith(() => ({ stream: Readable.from([Buffer.from('partial')]), done: new Promise<void>((_ok, no) => (fail = no)) }));
    await readLate(output.stream, 0);
    fail(new BackupError('E_SOURCE', 'sources.cache: dump exited with code 3'));
    await expect(output.done).rejects.toThrow('dump exited with code 3');
  });

  it('is cut short when less than it produced was stored, or it never ended', async () => {
    const output = await openWith(() => ({ stream: Readable.from([Buffer.from('0123456789')]) }));
    await readLate(output.stream, 0);
    expect(() => output.checkConsumed(4)).toThrow('sources.cache: cache was cut short: 4 of its 10 bytes were stored; nothing of it is stored');
    const endless = await openWith(() => ({ stream: new PassThrough() }));
    expect(() => endless.checkConsumed(0)).toThrow('sources.cache: cache was cut short: its output did not end (0 bytes read)');
    endless.stream.destroy();
  });
});

describe('a program open() returns', () => {
  it('is run by core and read from its first byte: every size, however late the pipeline reads', async () => {
    for (const size of [0, 1, 70_000, 1024 * 1024]) {
      const data = randomBytes(size);
      const file = path.join(dir, `program-${size}`);
      await fsp.writeFile(file, data);
      const output = await openWith(() => ({ command: 'cat', args: [file] }));
      const read = await readLate(output.stream);
      await output.done;
      expect(read.equals(data), `${size} bytes`).toBe(true);
      output.checkConsumed(read.length);
    }
  });

  it('fails when it exits non-zero or is killed, naming the source and quoting its stderr with secrets redacted', async () => {
    const secrets = new SecretRegistry();
    const exits = await openWith(
      () => ({ command: 'sh', args: ['-c', 'echo partial; echo "login with $REDIS_PASSWORD refused" >&2; exit 3'], env: { REDIS_PASSWORD: 'Rp9-secret-31x' } }),
      secrets,
    );
    // The stream may end before the exit status is known: `done` is what fails the artifact.
    const [, done] = await Promise.allSettled([readLate(exits.stream, 0), exits.done]);
    expect(done).toMatchObject({ status: 'rejected', reason: { code: 'E_SOURCE', message: 'sources.cache: cache failed: sh exited with code 3: login with *** refused' } });

    const killed = await openWith(() => ({ command: 'sh', args: ['-c', 'echo partial; kill -9 $$'] }));
    await expect(Promise.all([readLate(killed.stream, 0), killed.done])).rejects.toThrow('sources.cache: cache failed: sh was killed by SIGKILL');

    const missing = await openWith(() => ({ command: '/nonexistent/redis-cli' }));
    await expect(Promise.all([readLate(missing.stream, 0), missing.done])).rejects.toThrow(/sources\.cache: cache failed: redis-cli could not be run \(spawn \/nonexistent\/redis-cli ENOENT\)/);
  });

  it('gets its env and cwd, and of ours only what finds programs and speaks the locale', async () => {
    process.env.SUTAZAI_TEST_PARENT_SECRET = 'parent-value';
    try {
      const output = await openWith(() => ({ command: 'sh', args: ['-c', 'echo "$DUMP_DB|${SUTAZAI_TEST_PARENT_SECRET:-unset}|$(pwd)|${PATH:+path}"'], env: { DUMP_DB: '3' }, cwd: dir }));
      const read = await readLate(output.stream, 0);
      await output.done;
      expect(read.toString()).toBe(`3|unset|${await fsp.realpath(dir)}|path\n`);
    } finally {
      delete process.env.SUTAZAI_TEST_PARENT_SECRET;
    }
    await expect(openWith(() => ({ command: 'cat', cwd: 'relative/folder' }))).rejects.toThrow(
      'sources.cache: open() of cache returned a relative cwd (relative/folder): give an absolute folder',
    );
  });
});

describe('failures of a stage whose first failure aborted the others', () => {
  it('lists each root cause once, leaving out the abort echoed by the tasks it stopped', () => {
    const root = new BackupError('E_SOURCE', 'sources.a: dump exited with code 3');
    const other = new BackupError('E_SOURCE', 'sources.b: dump exited with code 1');
    const stopped = new BackupError('E_ABORTED', 'sources.c: stopped because the run was aborted');
    const wrapped = new BackupError('E_ARCHIVE', 'Premature close', { cause: root });
    const abortError = Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
    expect(rootFailures([root, root, stopped, wrapped, abortError, root, other], root)).toEqual([root, other]);
    // An interrupted run: nothing but echoes, and the first one stands.
    expect(rootFailures([stopped, abortError], new Error('SIGTERM'))).toEqual([stopped]);
  });
});

describe("a destination's get", () => {
  it('must hand over a stream nobody has read: one already drained is refused, naming the destination', async () => {
    // A destination plugin written the way the race happens: a program's stdout, read by someone else first.
    const drained = (): Destination => ({
      description: 'test:drained',
      async get() {
        const body = Readable.from([Buffer.from('{"formatVersion":1}')]);
        body.resume();
        await once(body, 'end');
        return body;
      },
      put: async () => undefined,
      list: async () => [],
      delete: async () => undefined,
      stat: async () => undefined,
    });
    const repo = new Repository(drained(), 'destinations.offsite');
    await expect(repo.openArtifact('20261126T020000Z-daily-3f9a', 'cache.rdb.zst')).rejects.toMatchObject({
      code: 'E_DESTINATION',
      message: "destinations.offsite: reading snapshots/20261126T020000Z-daily-3f9a/cache.rdb.zst: the stream the destination's get() returned had already ended: it must return one nobody has read yet",
    });
    await expect(repo.readManifest('20261126T020000Z-daily-3f9a')).rejects.toThrow(/^destinations\.offsite: reading snapshots\/20261126T020000Z-daily-3f9a\/manifest\.json: the stream the destination's get\(\) returned had already ended/);
  });
});

/**
 * Which errors core tries again (by code, never by message), that a retry nested in another does
 * not multiply the attempts, that an upload is sent again only while its body is unread, and that
 * a local folder stays a folder behind the retrying wrapper. The destination is a real folder.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDestination, type PutInfo } from '../src/destination.js';
import { BackupError } from '../src/errors.js';
import { Repository } from '../src/repository.js';
import { isTransient, retryingDestination, withRetry } from '../src/retry.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
const quick = { retries: 3, baseDelayMs: 1 };

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-retry-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('isTransient', () => {
  it('a dropped connection, a timeout and an S3 503 or 429 are transient', () => {
    expect(isTransient(reset())).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { code: 'ETIMEDOUT' }))).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 503 } }))).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 429 } }))).toBe(true);
    expect(isTransient(new BackupError('E_DESTINATION', 'upload failed', { cause: reset() }))).toBe(true);
  });

  it('authentication, a missing key, a full disk, a permission error, an S3 403 and retryable: false are not', () => {
    expect(isTransient(new BackupError('E_AUTH', 'login refused'))).toBe(false);
    expect(isTransient(new BackupError('E_NOT_FOUND', 'no such key'))).toBe(false);
    expect(isTransient(new BackupError('E_DESTINATION', 'full', { cause: Object.assign(new Error('x'), { code: 'ENOSPC' }) }))).toBe(false);
    expect(isTransient(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe(false);
    expect(isTransient(Object.assign(new Error('x'), { $metadata: { httpStatusCode: 403 } }))).toBe(false);
    expect(isTransient(new BackupError('E_DESTINATION', 'drive not mounted', { details: { retryable: false } }))).toBe(false);
  });

  it('the message does not decide: "aborted" in a transient error is still retried', () => {
    expect(isTransient(Object.assign(new Error('request aborted by peer'), { code: 'ECONNRESET' }))).toBe(true);
  });
});

describe('withRetry', () => {
  it('an outer retry does not try again what an inner one gave up on', async () => {
    let calls = 0;
    const inner = () => withRetry(async () => {
      calls++;
      throw reset();
    }, quick);
    await expect(withRetry(inner, quick)).rejects.toThrow('socket hang up');
    expect(calls).toBe(4);
  });
});

describe('retryingDestination', () => {
  it('retries a put whose body was not read, and not one whose body was', async () => {
    const folder = new LocalDestination(dir);
    let puts = 0;
    const flaky = Object.assign(Object.create(folder) as LocalDestination, {
      async put(key: string, body: Readable, info?: PutInfo) {
        if (++puts === 1) {
          if (key === 'read') body.read();
          throw reset();
        }
        return folder.put(key, body, info);
      },
    });
    const d = retryingDestination(flaky, { name: 'test', retry: quick });
    await d.put('unread', Readable.from([Buffer.from('abc')]));
    expect(puts).toBe(2);
    expect(await fsp.readFile(path.join(dir, 'unread'), 'utf8')).toBe('abc');
    puts = 0;
    await expect(d.put('read', Readable.from([Buffer.from('abc')]))).rejects.toThrow('socket hang up');
    expect(puts).toBe(1);
  });

  it('a local folder behind it is still read as a file', async () => {
    await fsp.mkdir(path.join(dir, 'snapshots', 's1'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'snapshots', 's1', 'a.tar'), 'tar bytes');
    const repo = new Repository(retryingDestination(new LocalDestination(dir), { name: 'test' }), 'drive');
    const handle = await repo.openArtifactFile('s1', 'a.tar');
    expect(handle).toBeDefined();
    expect((await handle!.readFile()).toString()).toBe('tar bytes');
    await handle!.close();
  });
});

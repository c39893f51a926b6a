import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HashWorker } from '../src/pipeline/hash-worker.js';
import { readAhead } from '../src/pipeline/read-ahead.js';
import { threadModule } from '../src/pipeline/threads.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-threads-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('threadModule', () => {
  it("finds each thread's compiled module in dist/ when the caller runs from src/", () => {
    const from = new URL('../src/pipeline/tar-pack.ts', import.meta.url).href;
    for (const name of ['hash-thread', 'read-ahead-thread', 'verify-worker']) {
      const url = threadModule(name, from);
      // The build runs before the tests: a missing module means the threads silently stopped running.
      expect(url, name).toBeDefined();
      expect(fileURLToPath(url!)).toBe(fileURLToPath(new URL(`../dist/pipeline/${name}.js`, import.meta.url)));
    }
  });

  it('maps only the last src/ folder of the path, and is undefined for a module that does not exist', async () => {
    const nested = path.join(dir, 'src', 'app', 'src', 'pipeline');
    await fsp.mkdir(path.join(dir, 'src', 'app', 'dist', 'pipeline'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'src', 'app', 'dist', 'pipeline', 'x.js'), '');
    const from = new URL(`file://${nested}/caller.ts`).href;
    expect(fileURLToPath(threadModule('x', from)!)).toBe(path.join(dir, 'src', 'app', 'dist', 'pipeline', 'x.js'));
    expect(threadModule('missing', from)).toBeUndefined();
    // Compiled callers find their threads beside them.
    await fsp.mkdir(nested, { recursive: true });
    await fsp.writeFile(path.join(nested, 'y.js'), '');
    expect(fileURLToPath(threadModule('y', `file://${nested}/caller.js`)!)).toBe(path.join(nested, 'y.js'));
  });
});

describe('HashWorker', () => {
  it('hashes chunks handed over in pooled buffers exactly as one sha256 over the whole', async () => {
    const data = randomBytes(5 * 64 * 1024 + 123);
    const hasher = new HashWorker(64 * 1024);
    try {
      for (let at = 0; at < data.length; at += 64 * 1024) {
        const buffer = await hasher.acquire();
        const n = data.copy(buffer, 0, at, Math.min(data.length, at + 64 * 1024));
        hasher.update(buffer.subarray(0, n));
      }
      expect(await hasher.digest()).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      await hasher.dispose();
    }
  });
});

describe('readAhead', () => {
  it('reads the files the packing has not reached, and skips missing ones', async () => {
    const paths: string[] = [];
    for (let i = 0; i < 5; i++) {
      const p = path.join(dir, `f${i}`);
      await fsp.writeFile(p, `file ${i}`);
      paths.push(p);
    }
    paths.splice(3, 0, path.join(dir, 'gone'));
    const reached = new Int32Array(new SharedArrayBuffer(4));
    // Files 10..15 of the walk; the packing is at file 11: 10 and 11 are skipped, "gone" too.
    reached[0] = 11;
    const buffer = Buffer.alloc(16);
    expect(readAhead({ first: 10, paths }, reached, buffer)).toBe(3);
    expect(buffer.subarray(0, 6).toString()).toBe('file 4');
    reached[0] = 100;
    expect(readAhead({ first: 10, paths }, reached, buffer)).toBe(0);
  });
});

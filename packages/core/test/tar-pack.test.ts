import { appendFileSync, promises as fsp, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packTree } from '../src/pipeline/tar-pack.js';
import { unsafeEntryReason, type TreeStats } from '../src/pipeline/tar-extract.js';
import { verifyingTarScanner } from '../src/pipeline/follow-verify.js';
import { extractTree } from '../src/pipeline/tree-writer.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-tar-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function roundTrip(root: string, options: Parameters<typeof packTree>[1] = {}) {
  const out = path.join(dir, 'out');
  await fsp.mkdir(out);
  const stats = await extractTree(packTree([root], options), out, { label: 'test' });
  return { out: path.join(out, root.slice(1)), stats };
}

describe('packTree', () => {
  it('round-trips long and non-ASCII names, empty files, symlinks and modes', async () => {
    const root = path.join(dir, 'src');
    const long = path.join(root, 'a'.repeat(120), 'b'.repeat(120));
    await fsp.mkdir(long, { recursive: true });
    await fsp.writeFile(path.join(long, `${'c'.repeat(150)}.txt`), 'long\n');
    await fsp.writeFile(path.join(root, 'ünïcødé – 日本.txt'), 'u\n');
    await fsp.writeFile(path.join(root, 'empty'), '');
    await fsp.writeFile(path.join(root, 'exec.sh'), '#!/bin/sh\n', { mode: 0o751 });
    await fsp.chmod(path.join(root, 'exec.sh'), 0o751);
    await fsp.symlink('empty', path.join(root, 'link'));
    const { out, stats } = await roundTrip(root);
    expect(await fsp.readFile(path.join(out, 'a'.repeat(120), 'b'.repeat(120), `${'c'.repeat(150)}.txt`), 'utf8')).toBe('long\n');
    expect(await fsp.readFile(path.join(out, 'ünïcødé – 日本.txt'), 'utf8')).toBe('u\n');
    expect((await fsp.stat(path.join(out, 'empty'))).size).toBe(0);
    expect((await fsp.stat(path.join(out, 'exec.sh'))).mode & 0o777).toBe(0o751);
    expect(await fsp.readlink(path.join(out, 'link'))).toBe('empty');
    expect(stats).toMatchObject({ files: 4, symlinks: 1 });
  });

  it('counts what it writes, applies the filter and replaces content through transform', async () => {
    const root = path.join(dir, 'src');
    await fsp.mkdir(path.join(root, 'skip'), { recursive: true });
    await fsp.writeFile(path.join(root, 'skip', 'x'), 'x');
    await fsp.writeFile(path.join(root, 'keep.env'), 'TOKEN=abc\n');
    const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    const { out } = await roundTrip(root, {
      filter: (e) => !e.absPath.endsWith('/skip'),
      transform: (e) => (e.absPath.endsWith('.env') ? Buffer.from('TOKEN=***\n') : null),
      stats,
    });
    expect(await fsp.readdir(out)).toEqual(['keep.env']);
    expect(await fsp.readFile(path.join(out, 'keep.env'), 'utf8')).toBe('TOKEN=***\n');
    expect(stats).toEqual({ files: 1, directories: 1, symlinks: 0, bytes: 10 });
  });

  it('keeps the size it saw for a large file that shrinks or grows while it is read, and says so', async () => {
    const root = path.join(dir, 'src');
    await fsp.mkdir(root);
    // Larger than the reads kept in flight, so that the shrink shows up in the middle of them.
    const size = 6 * 1024 * 1024 + 100;
    const shrinking = Buffer.alloc(size, 7);
    const growing = Buffer.alloc(size, 9);
    await fsp.writeFile(path.join(root, 'shrinks.bin'), shrinking);
    await fsp.writeFile(path.join(root, 'grows.bin'), growing);
    const warnings: string[] = [];
    // The filter runs after the file's size is taken and before its content is read.
    const { out } = await roundTrip(root, {
      filter: (e) => {
        if (e.absPath.endsWith('shrinks.bin')) truncateSync(e.absPath, 2 * 1024 * 1024 + 300);
        if (e.absPath.endsWith('grows.bin')) appendFileSync(e.absPath, Buffer.alloc(5000, 1));
        return true;
      },
      onWarning: (message, e) => warnings.push(`${path.basename(e.absPath)}: ${message}`),
    });
    const shrunk = await fsp.readFile(path.join(out, 'shrinks.bin'));
    expect(shrunk.length).toBe(size);
    expect(shrunk.subarray(0, 2 * 1024 * 1024 + 300).every((b) => b === 7)).toBe(true);
    expect(shrunk.subarray(2 * 1024 * 1024 + 300).every((b) => b === 0)).toBe(true);
    expect((await fsp.readFile(path.join(out, 'grows.bin'))).equals(growing)).toBe(true);
    expect(warnings.sort()).toEqual([
      `grows.bin: file grew while being read; stored its first ${size} bytes`,
      `shrinks.bin: file shrank while being read; padded with zeros to ${size} bytes`,
    ]);
  });

  it('packs hundreds of small files in many folders (walked and read ahead) exactly, with the filter applied', async () => {
    const root = path.join(dir, 'src');
    const expected: string[] = [];
    for (let f = 0; f < 30; f++) {
      const folder = path.join(root, `team-${String(f).padStart(2, '0')}`);
      await fsp.mkdir(path.join(folder, 'skip'), { recursive: true });
      await fsp.writeFile(path.join(folder, 'skip', 'secret.yaml'), 'no\n');
      for (let i = 0; i < 15; i++) {
        const name = `svc-${String(i).padStart(2, '0')}.yaml`;
        await fsp.writeFile(path.join(folder, name), `service: ${f}-${i}\n`.repeat(i + 1));
        expected.push(`team-${String(f).padStart(2, '0')}/${name}`);
      }
    }
    const stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    const { out } = await roundTrip(root, { filter: (e) => path.basename(e.absPath) !== 'skip', stats });
    expect(stats).toMatchObject({ files: 450, directories: 31 });
    const restored: string[] = [];
    for (const folder of (await fsp.readdir(out)).sort()) {
      for (const name of (await fsp.readdir(path.join(out, folder))).sort()) restored.push(`${folder}/${name}`);
    }
    expect(restored).toEqual(expected);
    for (const file of [expected[0]!, expected[224]!, expected[449]!]) {
      expect(await fsp.readFile(path.join(out, file), 'utf8')).toBe(await fsp.readFile(path.join(root, file), 'utf8'));
    }
  });

  it('fails naming a path that does not exist', async () => {
    const scanner = verifyingTarScanner('x');
    const scan = async () => {
      for await (const chunk of packTree([path.join(dir, 'nope')])) scanner.update(chunk as Buffer);
    };
    await expect(scan()).rejects.toThrow(`path ${path.join(dir, 'nope')} does not exist`);
  });

});

describe('unsafeEntryReason', () => {
  it('refuses absolute paths, .. and special files', () => {
    expect(unsafeEntryReason({ path: '/etc/passwd', type: 'File', linkpath: '' })).toBe('absolute path');
    expect(unsafeEntryReason({ path: 'a/../../x', type: 'File', linkpath: '' })).toBe('path contains ".."');
    expect(unsafeEntryReason({ path: 'dev', type: 'CharacterDevice', linkpath: '' })).toMatch(/not allowed/);
    expect(unsafeEntryReason({ path: 'ok/file', type: 'File', linkpath: '' })).toBeUndefined();
  });

  it('extractTree stops at the first unsafe entry with an error naming it', async () => {
    const { Header } = await import('tar');
    const h = new Header({ path: '../escape.txt', type: 'File', size: 2, mode: 0o644, mtime: new Date() });
    h.encode();
    const body = Buffer.alloc(512);
    body.write('hi');
    const archive = Buffer.concat([h.block!, body, Buffer.alloc(1024)]);
    const out = path.join(dir, 'x');
    await fsp.mkdir(out);
    await expect(extractTree(Readable.from([archive]), out, { label: 'evil' })).rejects.toThrow('evil: refused archive entry "../escape.txt": path contains ".."');
    expect(await fsp.readdir(dir)).toEqual(['x']);
  });
});

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeArtifact } from '../src/pipeline/archive.js';
import { createDecompressor } from '../src/pipeline/compression.js';
import { createChunkDecoder } from '../src/pipeline/decoder.js';
import { looksIncompressible } from '../src/pipeline/encoder.js';
import type { ProgramSpec } from '../src/pipeline/program.js';
import { packTree, tarPieces } from '../src/pipeline/tar-pack.js';
import { TarScanner } from '../src/pipeline/tar-scan.js';
import { TreeWriter } from '../src/pipeline/tree-writer.js';
import { Header } from 'tar';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-pipeline-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function mixedTree(): Promise<{ root: string; blob: Buffer }> {
  const root = path.join(dir, 'src');
  await fsp.mkdir(path.join(root, 'logs'), { recursive: true });
  await fsp.mkdir(path.join(root, 'models'), { recursive: true });
  for (let i = 0; i < 50; i++) await fsp.writeFile(path.join(root, 'logs', `app-${i}.log`), `line ${i} request ok status=200\n`.repeat(200 + i));
  const blob = randomBytes(6 * 1024 * 1024 + 123);
  await fsp.writeFile(path.join(root, 'models', 'weights.bin'), blob);
  await fsp.writeFile(path.join(root, 'models', 'big-text.txt'), 'compressible text '.repeat(400_000));
  return { root, blob };
}

async function streamBytes(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

function decode(stored: Buffer): Buffer {
  const decoder = createChunkDecoder('zstd', 'test')!;
  const out: Buffer[] = [];
  // Feed in odd-sized pieces: frames and blocks straddle chunk boundaries.
  for (let i = 0; i < stored.length; i += 77_777) decoder.update(stored.subarray(i, i + 77_777), (d) => out.push(Buffer.from(d)));
  decoder.end();
  return Buffer.concat(out);
}

describe('writeArtifact with tarPieces', () => {
  it('stores random data without compressing it, compresses the rest, and stock zstd decodes it to the same tar', async () => {
    const { root, blob } = await mixedTree();
    const file = path.join(dir, 'a.tar.zst');
    const written = await writeArtifact(tarPieces([root], { isIncompressible: looksIncompressible }), file, { compression: 'zstd' });
    const expected = await streamBytes(packTree([root]));
    const stored = await fsp.readFile(file);
    expect(written.rawBytes).toBe(expected.length);
    expect(written.bytes).toBe(stored.length);
    expect(written.sha256).toBe(createHash('sha256').update(stored).digest('hex'));
    // The blob is stored (3 bytes per 128 KiB block, a few frame headers); the text shrinks a lot.
    expect(stored.length).toBeLessThan(blob.length + 200_000);
    expect(stored.length).toBeGreaterThan(blob.length);
    expect(decode(stored).equals(expected)).toBe(true);
    expect(execFileSync('zstd', ['-d', '-c', file], { maxBuffer: 64 * 1024 * 1024 }).equals(expected)).toBe(true);
  });

  it('writes a decodable frame for an empty stream, and plain bytes with compression none', async () => {
    const empty = path.join(dir, 'empty.zst');
    const written = await writeArtifact((async function* () {})(), empty, { compression: 'zstd' });
    expect(written.rawBytes).toBe(0);
    expect(decode(await fsp.readFile(empty)).length).toBe(0);
    const { root } = await mixedTree();
    const plain = path.join(dir, 'plain.tar');
    await writeArtifact(tarPieces([root], { isIncompressible: looksIncompressible }), plain, { compression: 'none' });
    expect((await fsp.readFile(plain)).equals(await streamBytes(packTree([root])))).toBe(true);
  });

  it('judges random samples incompressible and text compressible', () => {
    expect(looksIncompressible([randomBytes(65536), randomBytes(65536)])).toBe(true);
    expect(looksIncompressible([Buffer.from('abc def '.repeat(8192))])).toBe(false);
  });
});

describe('writeArtifact through a program (an encryption stage run by the pipeline)', () => {
  // `gzip -1` stands for an encryption program: bytes in on stdin, other bytes out on stdout.
  const gzip = (extra: Partial<ProgramSpec> = {}): ProgramSpec => ({
    command: 'sh',
    args: ['-c', 'gzip -1 -c; echo done >&3'],
    env: { PATH: process.env.PATH },
    statusFd: 3,
    check: (o) => (o.code === 0 && o.status.trim() === 'done' ? undefined : new Error(`gzip failed (${o.code}): ${o.stderr}`)),
    ...extra,
  });

  it("stores the program's output, hashed in the same pass, and it decodes back to the input", async () => {
    const { root } = await mixedTree();
    const file = path.join(dir, 'a.tar.zst.gz');
    const written = await writeArtifact(tarPieces([root], { isIncompressible: looksIncompressible }), file, { compression: 'zstd', program: gzip() });
    const stored = await fsp.readFile(file);
    expect(written.bytes).toBe(stored.length);
    expect(written.sha256).toBe(createHash('sha256').update(stored).digest('hex'));
    const tar = execFileSync('sh', ['-c', `gzip -d -c '${file}' | zstd -d -c`], { maxBuffer: 64 * 1024 * 1024 });
    expect(tar.equals(await streamBytes(packTree([root])))).toBe(true);
    expect((await fsp.stat(file)).mode & 0o777).toBe(0o600);
  });

  it('keeps up when the program writes more than the pooled buffers hold (its output pauses, nothing is lost)', async () => {
    // `cat` of 40 MiB of random data: the output arrives faster than the buffers are written.
    const input = randomBytes(40 * 1024 * 1024);
    const file = path.join(dir, 'big');
    const cat: ProgramSpec = { command: 'cat', args: [], env: { PATH: process.env.PATH }, check: (o) => (o.code === 0 ? undefined : new Error('cat failed')) };
    const written = await writeArtifact((async function* () {
      for (let i = 0; i < input.length; i += 3 * 1024 * 1024) yield input.subarray(i, i + 3 * 1024 * 1024);
    })(), file, { compression: 'none', program: cat });
    expect(written.bytes).toBe(input.length);
    expect((await fsp.readFile(file)).equals(input)).toBe(true);
  });

  it("fails with the program's own error when it fails, and when it cannot be started", async () => {
    const { root } = await mixedTree();
    const failing = gzip({ args: ['-c', 'head -c 1000 >/dev/null; echo "bad key" >&2; exit 2'] });
    await expect(writeArtifact(tarPieces([root]), path.join(dir, 'x'), { compression: 'zstd', program: failing })).rejects.toThrow(/gzip failed \(2\): bad key/);
    const missing = gzip({ command: path.join(dir, 'no-such-program') });
    await expect(writeArtifact(tarPieces([root]), path.join(dir, 'y'), { compression: 'zstd', program: missing })).rejects.toThrow(/could not be started/);
  });
});

describe('createDecompressor (zstd)', () => {
  it('decodes a highly compressible artifact only as fast as its reader reads', async () => {
    // 64 MiB of repetitive rows compress to a few KiB: one 1 MiB stored chunk is the whole artifact.
    const row = Buffer.from('1|1|0|                                                                                    \n');
    const raw = Buffer.alloc(64 * 1024 * 1024);
    for (let i = 0; i < raw.length; i += row.length) row.copy(raw, i);
    const stored = execFileSync('zstd', ['-3', '-c'], { input: raw, maxBuffer: 1 << 30 });
    expect(stored.length).toBeLessThan(1024 * 1024);
    const decoder = createDecompressor('zstd')!;
    decoder.end(stored);
    // A reader that takes one piece, then stops (as pg_restore --list does after the table of contents).
    const first = await new Promise<Buffer>((resolve) => decoder.once('data', (b: Buffer) => (decoder.pause(), resolve(b))));
    await new Promise((r) => setTimeout(r, 50));
    expect(first.equals(raw.subarray(0, first.length))).toBe(true);
    expect(decoder.readableLength).toBeLessThanOrEqual(2 * 1024 * 1024);
    // Read to the end: the same bytes, then the end of the stream.
    decoder.resume();
    const rest: Buffer[] = [first];
    decoder.on('data', (b: Buffer) => rest.push(b));
    await new Promise((resolve, reject) => decoder.once('end', resolve).once('error', reject));
    expect(Buffer.concat(rest).equals(raw)).toBe(true);
  });

  it('fails when the input stops in the middle of a frame, and on damaged input', async () => {
    const stored = execFileSync('zstd', ['-3', '-c'], { input: randomBytes(300_000) });
    const drain = (input: Buffer) =>
      new Promise<void>((resolve, reject) => {
        const d = createDecompressor('zstd')!;
        d.on('data', () => {}).once('end', resolve).once('error', reject);
        d.end(input);
      });
    await expect(drain(stored)).resolves.toBeUndefined();
    await expect(drain(stored.subarray(0, stored.length - 1000))).rejects.toThrow(/middle of compressed data frame/);
    const damaged = Buffer.from(stored);
    damaged[4] ^= 0xff;
    await expect(drain(damaged)).rejects.toThrow();
  });
});

describe('TarScanner', () => {
  async function archive(): Promise<Buffer> {
    const { root } = await mixedTree();
    return streamBytes(packTree([root]));
  }

  it('counts entries across chunk boundaries', async () => {
    const tar = await archive();
    const scanner = new TarScanner('t');
    for (let i = 0; i < tar.length; i += 1000) scanner.update(tar.subarray(i, i + 1000));
    expect(scanner.end()).toMatchObject({ files: 52, symlinks: 0 });
  });

  it('refuses a truncated archive, a damaged header and a missing end marker', async () => {
    const tar = await archive();
    const cut = new TarScanner('t');
    cut.update(tar.subarray(0, 4000));
    expect(() => cut.end()).toThrow(/t: the archive cannot be read: truncated/);

    const damaged = Buffer.from(tar);
    damaged[512 + 60] ^= 0x01; // in the name field of the second header
    const scanner = new TarScanner('t');
    expect(() => scanner.update(damaged)).toThrow(/checksum failure/);

    const noEnd = new TarScanner('t');
    noEnd.update(tar.subarray(0, tar.length - 1024));
    expect(() => noEnd.end()).toThrow(/no end-of-archive marker/);
  });
});

describe('TreeWriter', () => {
  function entry(p: string, type: string, body = '', linkpath?: string): Buffer {
    const h = new Header({ path: p, type: type as never, size: body.length, mode: 0o640, mtime: new Date('2026-01-02T03:04:05Z'), ...(linkpath ? { linkpath } : {}) });
    h.encode();
    const content = Buffer.alloc(Math.ceil(body.length / 512) * 512);
    content.write(body);
    return Buffer.concat([h.block!, content]);
  }
  async function extract(parts: Buffer[]): Promise<string> {
    const out = await fsp.mkdtemp(path.join(dir, 'out-'));
    const writer = new TreeWriter(out, { label: 'evil' });
    try {
      writer.update(Buffer.concat([...parts, Buffer.alloc(1024)]));
      writer.finish();
    } finally {
      writer.abort();
    }
    return out;
  }

  it('restores files, folders and symlinks with their modes and times', async () => {
    const out = await extract([entry('a/', 'Directory'), entry('a/f.txt', 'File', 'hello'), entry('a/link', 'SymbolicLink', '', 'f.txt')]);
    expect(await fsp.readFile(path.join(out, 'a/f.txt'), 'utf8')).toBe('hello');
    const st = await fsp.stat(path.join(out, 'a/f.txt'));
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.mtime.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect((await fsp.stat(path.join(out, 'a'))).mode & 0o777).toBe(0o640);
    expect(await fsp.readlink(path.join(out, 'a/link'))).toBe('f.txt');
  });

  it('never writes through a symlink it made, nor twice to one path', async () => {
    const target = path.join(dir, 'outside');
    await fsp.mkdir(target);
    await expect(extract([entry('link', 'SymbolicLink', '', target), entry('link/passwd', 'File', 'x')])).rejects.toThrow(
      'evil: refused archive entry "link/passwd": would be written through the symlink "link"',
    );
    expect(await fsp.readdir(target)).toEqual([]);
    await expect(extract([entry('f', 'File', 'one'), entry('f', 'File', 'two')])).rejects.toThrow('appears twice');
    await expect(extract([entry('../x', 'File', 'x')])).rejects.toThrow('path contains ".."');
  });
});

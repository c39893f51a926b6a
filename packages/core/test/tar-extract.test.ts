import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Header, Pax } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyingTarScanner } from '../src/pipeline/follow-verify.js';
import {
  ExtractionGuard,
  MAX_TREE_DEPTH,
  restoredMode,
  rewriteAbsoluteSymlink,
  symlinkStaysInside,
  symlinkTargetReason,
  unsafeEntryReason,
  symlinksStayInside,
} from '../src/pipeline/tar-extract.js';
import { extractTree, TreeWriter } from '../src/pipeline/tree-writer.js';

interface Entry {
  path: string;
  type: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice';
  body?: string | Buffer;
  linkpath?: string;
  mode?: number;
}

/** A tar archive written by hand, so that it can hold what our packer never writes. */
function tar(entries: Entry[]): Readable {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const data = {
      path: e.path,
      type: e.type,
      size: e.type === 'File' ? body.length : 0,
      mode: e.mode ?? (e.type === 'Directory' ? 0o755 : 0o644),
      mtime: new Date(0),
      uid: 0,
      gid: 0,
      ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
    };
    const h = new Header(data);
    if (h.encode()) blocks.push(new Pax({ path: e.path, ...(e.linkpath ? { linkpath: e.linkpath } : {}) }).encode());
    blocks.push(h.block!);
    if (body.length) {
      blocks.push(body);
      if (body.length % 512) blocks.push(Buffer.alloc(512 - (body.length % 512)));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Readable.from([Buffer.concat(blocks)]);
}

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'tar-extract-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('unsafeEntryReason', () => {
  it('accepts files, folders and symlinks inside the tree', () => {
    expect(unsafeEntryReason({ path: 'etc/app/config.yml', type: 'File', linkpath: '' })).toBeUndefined();
    expect(unsafeEntryReason({ path: 'etc/app/', type: 'Directory', linkpath: '' })).toBeUndefined();
    expect(unsafeEntryReason({ path: 'etc/app/current', type: 'SymbolicLink', linkpath: 'releases/v3' })).toBeUndefined();
    expect(unsafeEntryReason({ path: 'etc/app/up', type: 'SymbolicLink', linkpath: '../other/file' })).toBeUndefined();
  });

  it('refuses hardlinks, devices and FIFOs', () => {
    expect(unsafeEntryReason({ path: 'h', type: 'Link', linkpath: 'a' })).toMatch(/hardlink is not allowed/);
    expect(unsafeEntryReason({ path: 'f', type: 'FIFO', linkpath: '' })).toMatch(/FIFO is not allowed/);
    expect(unsafeEntryReason({ path: 'c', type: 'CharacterDevice', linkpath: '' })).toMatch(/character device/);
    expect(unsafeEntryReason({ path: 'b', type: 'BlockDevice', linkpath: '' })).toMatch(/block device/);
  });

  it('refuses absolute paths and ".."', () => {
    expect(unsafeEntryReason({ path: '/etc/passwd', type: 'File', linkpath: '' })).toBe('absolute path');
    expect(unsafeEntryReason({ path: '../x', type: 'File', linkpath: '' })).toBe('path contains ".."');
    expect(unsafeEntryReason({ path: 'a/../../x', type: 'File', linkpath: '' })).toBe('path contains ".."');
  });

  it('refuses entries nested deeper than the limit', () => {
    const deep = Array.from({ length: MAX_TREE_DEPTH + 1 }, () => 'd').join('/');
    expect(unsafeEntryReason({ path: deep, type: 'Directory', linkpath: '' })).toMatch(/nested 257 folders deep \(the limit is 256\)/);
    const ok = Array.from({ length: MAX_TREE_DEPTH }, () => 'd').join('/');
    expect(unsafeEntryReason({ path: ok, type: 'Directory', linkpath: '' })).toBeUndefined();
  });
});

describe('symlink targets', () => {
  it('refuses relative targets that leave the tree, judged from the link folder', () => {
    expect(symlinkTargetReason('link', '../x')).toMatch(/outside the restored tree/);
    expect(symlinkTargetReason('a/b/link', '../../../x')).toMatch(/outside/);
    expect(symlinkTargetReason('a/b/link', '../../x')).toBeUndefined();
    expect(symlinkTargetReason('a/link', '.')).toBeUndefined();
    expect(symlinkTargetReason('a/link', '')).toMatch(/without a target/);
  });

  it('rewrites absolute targets to the same place inside the tree', () => {
    expect(rewriteAbsoluteSymlink('usr/bin/python', '/etc/alternatives/python')).toBe('../../etc/alternatives/python');
    expect(rewriteAbsoluteSymlink('opt/app/current', '/opt/app/releases/v3')).toBe('releases/v3');
    expect(rewriteAbsoluteSymlink('top', '/')).toBe('.');
    expect(rewriteAbsoluteSymlink('a/b', '/../../../etc/shadow')).toBe('../etc/shadow');
  });

  it('follows chains of links on disk and finds the ones that lead out', async () => {
    await fsp.mkdir(path.join(dir, 'tree/sub'), { recursive: true });
    await fsp.symlink('.', path.join(dir, 'tree/self'));
    // Lexically "self/.." is the tree itself; on disk self is the tree, so self/.. is its parent.
    await fsp.symlink('self/../outside', path.join(dir, 'tree/escape'));
    await fsp.symlink('../sub', path.join(dir, 'tree/sub/ok'));
    await fsp.symlink('missing/../../x', path.join(dir, 'tree/dangling'));
    await fsp.symlink('loop2', path.join(dir, 'tree/loop1'));
    await fsp.symlink('loop1', path.join(dir, 'tree/loop2'));
    const root = path.join(dir, 'tree');
    expect(await symlinkStaysInside(root, 'escape')).toBe(false);
    expect(await symlinkStaysInside(root, 'sub/ok')).toBe(true);
    expect(await symlinkStaysInside(root, 'self')).toBe(true);
    expect(await symlinkStaysInside(root, 'dangling')).toBe(false);
    expect(await symlinkStaysInside(root, 'loop1')).toBe(true);
  });
});

describe('restoredMode', () => {
  it('drops setuid and setgid unless owners are preserved', () => {
    expect(restoredMode(0o4755, false)).toBe(0o755);
    expect(restoredMode(0o2755, false)).toBe(0o755);
    expect(restoredMode(0o1777, false)).toBe(0o1777);
    expect(restoredMode(0o4755, true)).toBe(0o4755);
  });
});

describe('ExtractionGuard', () => {
  it('refuses writing through, or replacing, a symlink made earlier in the archive', () => {
    const guard = new ExtractionGuard();
    expect(guard.check({ path: 'etc', type: 'SymbolicLink', linkpath: '/etc' })).toBeUndefined();
    expect(guard.check({ path: 'etc/passwd', type: 'File', linkpath: '', size: 3 })).toMatch(/written through the symlink "etc"/);
    expect(guard.check({ path: './etc', type: 'File', linkpath: '', size: 3 })).toMatch(/replace the symlink "etc"/);
  });

  it('refuses a path that appears twice (except a folder)', () => {
    const guard = new ExtractionGuard();
    expect(guard.check({ path: 'a', type: 'File', linkpath: '', size: 1 })).toBeUndefined();
    expect(guard.check({ path: 'a', type: 'File', linkpath: '', size: 1 })).toMatch(/twice/);
    expect(guard.check({ path: 'd/', type: 'Directory', linkpath: '' })).toBeUndefined();
    expect(guard.check({ path: 'd', type: 'Directory', linkpath: '' })).toBeUndefined();
  });

  it('refuses files that add up to more than the recorded bytes, before writing them', () => {
    const guard = new ExtractionGuard({ maxBytes: 1000 });
    expect(guard.check({ path: 'a', type: 'File', linkpath: '', size: 600 })).toBeUndefined();
    expect(guard.check({ path: 'b', type: 'File', linkpath: '', size: 401 })).toMatch(/more than the 1000 bytes the manifest records/);
  });
});

describe('extractTree', () => {
  const target = () => path.join(dir, 'target', 'src');

  async function extract(entries: Entry[], options: Partial<Parameters<typeof extractTree>[2]> = {}) {
    await fsp.mkdir(target(), { recursive: true });
    return extractTree(tar(entries), target(), { label: 'test', ...options });
  }

  it('restores legitimate trees with relative and absolute symlinks', async () => {
    const warnings: string[] = [];
    const stats = await extract(
      [
        { path: 'opt/app/', type: 'Directory' },
        { path: 'opt/app/releases/v3/run.sh', type: 'File', body: 'echo hi\n', mode: 0o755 },
        { path: 'opt/app/current', type: 'SymbolicLink', linkpath: 'releases/v3' },
        { path: 'opt/app/abs', type: 'SymbolicLink', linkpath: '/opt/app/releases/v3/run.sh' },
      ],
      { onWarning: (m) => warnings.push(m) },
    );
    expect(stats).toMatchObject({ files: 1, directories: 1, symlinks: 2 });
    expect(await fsp.readFile(path.join(target(), 'opt/app/current/run.sh'), 'utf8')).toBe('echo hi\n');
    expect(await fsp.readlink(path.join(target(), 'opt/app/abs'))).toBe('releases/v3/run.sh');
    expect(await fsp.readFile(path.join(target(), 'opt/app/abs'), 'utf8')).toBe('echo hi\n');
    expect(((await fsp.stat(path.join(target(), 'opt/app/releases/v3/run.sh'))).mode & 0o7777).toString(8)).toBe('755');
    expect(warnings.join()).toMatch(/1 absolute symlink\(s\) rewritten/);
  });

  it('refuses a symlink followed by a file written through it, and writes nothing outside', async () => {
    await fsp.mkdir(path.join(dir, 'outside'));
    await expect(
      extract([
        { path: 'evil', type: 'SymbolicLink', linkpath: path.join(dir, 'outside') },
        { path: 'evil/pwned', type: 'File', body: 'x' },
      ]),
    ).rejects.toThrow(/refused archive entry "evil\/pwned": would be written through the symlink "evil"/);
    expect(await fsp.readdir(path.join(dir, 'outside'))).toEqual([]);
  });

  it('refuses a chain of symlinks that leads out of the tree', async () => {
    await expect(
      extract([
        { path: 'self', type: 'SymbolicLink', linkpath: '.' },
        { path: 'escape', type: 'SymbolicLink', linkpath: 'self/../outside' },
      ]),
    ).rejects.toThrow(/"escape": symlink leads outside the restored tree through other symlinks/);
  });

  it('refuses a tree deeper than the limit with a clear error', async () => {
    const deep = Array.from({ length: 300 }, () => 'd').join('/');
    await expect(extract([{ path: deep, type: 'Directory' }])).rejects.toThrow(/nested 300 folders deep \(the limit is 256\)/);
  });

  it("verify's scanner flags what a restore would refuse", async () => {
    const scanTree = async (input: Readable) => {
      const scanner = verifyingTarScanner('verify');
      for await (const chunk of input) scanner.update(chunk as Buffer);
      return scanner.end();
    };
    await expect(scanTree(tar([{ path: '../x', type: 'File', body: 'x' }]))).rejects.toThrow(/"\.\.\/x" would be refused by a restore: path contains "\.\."/);
    await expect(scanTree(tar([{ path: 'f', type: 'FIFO' }]))).rejects.toThrow(/FIFO is not allowed/);
    expect(await scanTree(tar([{ path: 'a', type: 'File', body: 'abc' }]))).toMatchObject({ files: 1, bytes: 3 });
  });

  it('is the extractor restore uses: a file the archive made cannot become a folder, and a hole stays a hole', async () => {
    await expect(
      extract([
        { path: 'f', type: 'File', body: 'x' },
        { path: 'f/inside', type: 'File', body: 'y' },
      ]),
    ).rejects.toThrow(/refused archive entry "f\/inside"/);
    await fsp.rm(target(), { recursive: true });
    const sparse = Buffer.concat([Buffer.from('head'), Buffer.alloc(1024 * 1024), Buffer.from('tail')]);
    await extract([{ path: 'sparse.img', type: 'File', body: sparse }]);
    const st = await fsp.stat(path.join(target(), 'sparse.img'));
    expect(st.size).toBe(sparse.length);
    expect(st.blocks * 512).toBeLessThan(sparse.length / 2);
  });
});

describe('TreeWriter (what restore uses)', () => {
  async function write(entries: Entry[], options: { preserveOwner?: boolean; maxBytes?: number; pieces?: number[] } = {}) {
    const root = path.join(dir, 'tree');
    await fsp.mkdir(root);
    const { pieces: _, ...writerOptions } = options;
    const writer = new TreeWriter(root, { label: 'w', ...writerOptions });
    const whole = Buffer.concat(await tar(entries).toArray());
    // Pieces of uneven sizes, as a decompressor hands them on.
    for (let at = 0, i = 0; at < whole.length; i++) {
      const n = options.pieces ? options.pieces[i % options.pieces.length]! : whole.length;
      writer.update(whole.subarray(at, at + n));
      at += n;
    }
    writer.finish();
    await symlinksStayInside(root, writer.symlinks, 'w');
    return { root, writer };
  }

  it('rewrites absolute symlinks, drops setuid, keeps relative links', async () => {
    const { root, writer } = await write([
      { path: 'bin/tool', type: 'File', body: 'x', mode: 0o4755 },
      { path: 'bin/abs', type: 'SymbolicLink', linkpath: '/bin/tool' },
      { path: 'bin/rel', type: 'SymbolicLink', linkpath: 'tool' },
    ]);
    expect(await fsp.readlink(path.join(root, 'bin/abs'))).toBe('tool');
    expect(await fsp.readlink(path.join(root, 'bin/rel'))).toBe('tool');
    expect(((await fsp.stat(path.join(root, 'bin/tool'))).mode & 0o7777).toString(8)).toBe('755');
    expect(writer.rewrittenSymlinks).toBe(1);
  });

  it('refuses escaping links, deep trees and more bytes than recorded', async () => {
    await expect(write([{ path: 'up', type: 'SymbolicLink', linkpath: '../x' }])).rejects.toThrow(/"up": symlink points outside/);
    await fsp.rm(path.join(dir, 'tree'), { recursive: true });
    await expect(
      write([
        { path: 'self', type: 'SymbolicLink', linkpath: '.' },
        { path: 'escape', type: 'SymbolicLink', linkpath: 'self/../outside' },
      ]),
    ).rejects.toThrow(/"escape": symlink leads outside the restored tree through other symlinks/);
    await fsp.rm(path.join(dir, 'tree'), { recursive: true });
    await expect(write([{ path: Array.from({ length: 300 }, () => 'd').join('/'), type: 'Directory' }])).rejects.toThrow(/nested \d+ folders deep \(the limit is 256\)/);
    await fsp.rm(path.join(dir, 'tree'), { recursive: true });
    await expect(write([{ path: 'big', type: 'File', body: 'x'.repeat(2000) }], { maxBytes: 1000 })).rejects.toThrow(/more than the 1000 bytes/);
  });

  it('leaves runs of zeros as holes: a sparse file restores sparse, with the same bytes', async () => {
    const data = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 251) + 1));
    const body = Buffer.concat([Buffer.alloc(65_536 + 300), data(100, 1), Buffer.alloc(4 * 1024 * 1024), data(5000, 2), Buffer.alloc(200_000)]);
    const small = Buffer.concat([data(10, 3), Buffer.alloc(3000)]);
    for (const pieces of [undefined, [7, 4096, 513, 65_536, 1, 8191]]) {
      await fsp.rm(path.join(dir, 'tree'), { recursive: true, force: true });
      const { root } = await write([{ path: 'disk.img', type: 'File', body }, { path: 'small', type: 'File', body: small }, { path: 'zeros', type: 'File', body: Buffer.alloc(10_000) }], pieces ? { pieces } : {});
      expect((await fsp.readFile(path.join(root, 'disk.img'))).equals(body)).toBe(true);
      expect((await fsp.readFile(path.join(root, 'small'))).equals(small)).toBe(true);
      expect((await fsp.readFile(path.join(root, 'zeros'))).equals(Buffer.alloc(10_000))).toBe(true);
      // 4.2 MiB long; its 5100 bytes of data fit in a few blocks.
      const st = await fsp.stat(path.join(root, 'disk.img'));
      expect(st.size).toBe(body.length);
      expect(st.blocks * 512).toBeLessThan(64 * 1024);
    }
  });
});

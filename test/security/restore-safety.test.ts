/**
 * Malicious archives, planted in a repository with correct sizes and checksums: `restore` must
 * refuse each with a clear error and write nothing, inside the target or outside it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { logMessages, runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';
import { listTree, writeCraftedSnapshot, type CraftedEntry } from '../helpers/crafted-repo.js';

let work: string;
let backupRoot: string;
let target: string;
let outside: string;

beforeEach(async () => {
  work = await tempDir('sutazai-restore-safety-');
  backupRoot = path.join(work, 'backups');
  target = path.join(work, 'restore');
  outside = path.join(work, 'outside');
  await fsp.mkdir(outside);
  await fsp.writeFile(path.join(outside, 'sentinel'), 'untouched');
  await fsp.mkdir(path.join(work, 'src'));
  await writeRc(work, `backupRoot: ./backups\nhost: crafted\nsources:\n  configs: { use: files, paths: [./src] }\n`);
});
afterEach(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** Everything outside the repository: the target, its parent, the sibling folder the attacks aim at. */
const landscape = async () => (await listTree(work)).filter((p) => !p.startsWith('backups'));

async function expectRefused(entries: CraftedEntry[], message: RegExp, adjust?: Parameters<typeof writeCraftedSnapshot>[3]) {
  const snapshot = await writeCraftedSnapshot(backupRoot, 'configs', entries, adjust);
  const before = await landscape();
  const result = await runCli(['restore', snapshot.id, '--to', target], { cwd: work });
  expect(result.code, result.stderr).toBe(1);
  expect(logMessages(result.stderr)).toMatch(message);
  expect(await landscape()).toEqual(before);
  expect(await fsp.readFile(path.join(outside, 'sentinel'), 'utf8')).toBe('untouched');
  return result;
}

describe('restore refuses malicious archives', () => {
  it('an entry with ".."', async () => {
    await expectRefused([{ path: '../x', type: 'File', body: 'pwned' }], /refused archive entry "\.\.\/x": path contains "\.\."; nothing was restored/);
  });

  it('an entry with an absolute path', async () => {
    const abs = path.join(outside, 'abs-pwned');
    await expectRefused([{ path: abs, type: 'File', body: 'pwned' }], new RegExp(`refused archive entry "${abs}": absolute path`));
    await expect(fsp.access(abs)).rejects.toThrow();
  });

  it('a symlink, then a file written through it', async () => {
    await expectRefused(
      [
        { path: 'evil', type: 'SymbolicLink', linkpath: outside },
        { path: 'evil/pwned', type: 'File', body: 'pwned' },
      ],
      /refused archive entry "evil\/pwned": would be written through the symlink "evil"/,
    );
  });

  it('a symlink whose relative target leads outside', async () => {
    await expectRefused([{ path: 'up', type: 'SymbolicLink', linkpath: '../../outside' }], /refused archive entry "up": symlink points outside the restored tree \(\.\.\/\.\.\/outside\)/);
  });

  it('a hardlink to ../../', async () => {
    await expectRefused([{ path: 'hard', type: 'Link', linkpath: '../../outside/sentinel' }], /refused archive entry "hard": a hardlink is not allowed in a restore/);
  });

  it('a FIFO', async () => {
    await expectRefused([{ path: 'fifo', type: 'FIFO' }], /refused archive entry "fifo": a FIFO is not allowed in a restore/);
  });

  it('2000 nested folders', async () => {
    const entries: CraftedEntry[] = [];
    for (let depth = 1; depth <= 2000; depth++) entries.push({ path: Array.from({ length: depth }, () => 'd').join('/') + '/', type: 'Directory' });
    await expectRefused(entries, /nested 257 folders deep \(the limit is 256\)/);
  });

  describe('a decompression bomb (64 MiB of zeros in a few KiB)', () => {
    const bomb: CraftedEntry[] = [{ path: 'bomb', type: 'File', zeros: 64 * 1024 * 1024 }];

    it('when the manifest records fewer bytes of files', async () => {
      await expectRefused(bomb, /refused archive entry "bomb": the files hold more than the 1024 bytes the manifest records/, (r) => {
        (r.meta.entries as { bytes: number }).bytes = 1024;
      });
    });

    it('when the manifest records a smaller decoded size', async () => {
      await expectRefused(bomb, /decodes to more than the 1048576 bytes the manifest records: refused/, (r) => {
        r.rawBytes = 1024 * 1024;
        delete r.meta.entries;
      });
    });

    it('when the manifest is honest but the disk is too small', async () => {
      await expectRefused([{ path: 'a', type: 'File', body: 'x' }], /not enough space at .*: the restore needs 4000000000000000 bytes/, (r) => {
        r.rawBytes = 4e15;
      });
    });
  });

  it('verify reports what a restore would refuse', async () => {
    const snapshot = await writeCraftedSnapshot(backupRoot, 'configs', [{ path: 'fifo', type: 'FIFO' }]);
    const result = await runCli(['verify', snapshot.id, '--json'], { cwd: work });
    expect(result.code).toBe(1);
    expect(result.json().snapshots[0].artifacts[0].error).toMatch(/"fifo" would be refused by a restore: a FIFO is not allowed/);
  });
});

describe('restore of legitimate trees', () => {
  it('keeps relative symlinks, and points absolute ones inside the restored tree', async () => {
    const snapshot = await writeCraftedSnapshot(backupRoot, 'configs', [
      { path: 'opt/app/', type: 'Directory' },
      { path: 'opt/app/releases/v3/config.yml', type: 'File', body: 'port: 80\n' },
      { path: 'opt/app/current', type: 'SymbolicLink', linkpath: 'releases/v3' },
      { path: 'opt/app/pinned', type: 'SymbolicLink', linkpath: '/opt/app/releases/v3/config.yml' },
      { path: 'opt/app/up', type: 'SymbolicLink', linkpath: '../app/releases' },
    ]);
    const result = await runCli(['restore', snapshot.id, '--to', target], { cwd: work });
    expect(result.code, result.stderr).toBe(0);
    const app = path.join(target, 'configs/opt/app');
    expect(await fsp.readFile(path.join(app, 'current/config.yml'), 'utf8')).toBe('port: 80\n');
    expect(await fsp.readlink(path.join(app, 'current'))).toBe('releases/v3');
    expect(await fsp.readlink(path.join(app, 'pinned'))).toBe('releases/v3/config.yml');
    expect(await fsp.readFile(path.join(app, 'pinned'), 'utf8')).toBe('port: 80\n');
    expect(await fsp.readlink(path.join(app, 'up'))).toBe('../app/releases');
    expect(logMessages(result.stderr)).toMatch(/1 absolute symlink\(s\) rewritten to point inside the restored tree/);
  });

  const isRoot = process.getuid?.() === 0;
  it.runIf(isRoot)('takes owners and setuid bits from the archive only with --preserve-owner', async () => {
    const snapshot = await writeCraftedSnapshot(backupRoot, 'configs', [{ path: 'bin/tool', type: 'File', body: '#!/bin/sh\n', mode: 0o4755, uid: 4242, gid: 4343 }]);
    let result = await runCli(['restore', snapshot.id, '--to', target], { cwd: work });
    expect(result.code, result.stderr).toBe(0);
    let st = await fsp.stat(path.join(target, 'configs/bin/tool'));
    expect([st.uid, st.gid, (st.mode & 0o7777).toString(8)]).toEqual([process.getuid!(), process.getgid!(), '755']);

    const preserved = path.join(work, 'preserved');
    result = await runCli(['restore', snapshot.id, '--to', preserved, '--preserve-owner'], { cwd: work });
    expect(result.code, result.stderr).toBe(0);
    st = await fsp.stat(path.join(preserved, 'configs/bin/tool'));
    expect([st.uid, st.gid, (st.mode & 0o7777).toString(8)]).toEqual([4242, 4343, '4755']);
  });
});

describe('the restore target', () => {
  const tree: CraftedEntry[] = [
    { path: 'etc/', type: 'Directory' },
    { path: 'etc/app.conf', type: 'File', body: 'port: 80\n' },
    { path: 'etc/keep.conf', type: 'File', body: 'keep\n' },
  ];

  it('a symlink at DIR/<source> is refused, with --force too: nothing is deleted or moved through it', async () => {
    const snapshot = await writeCraftedSnapshot(backupRoot, 'configs', tree);
    const linked = path.join(outside, 'linked');
    await fsp.mkdir(path.join(linked, 'etc'), { recursive: true });
    await fsp.writeFile(path.join(linked, 'etc', 'app.conf'), 'not from the backup\n');
    await fsp.mkdir(target);
    await fsp.symlink(linked, path.join(target, 'configs'));
    const before = await landscape();
    for (const force of [['--force'], []]) {
      const result = await runCli(['restore', snapshot.id, '--to', target, ...force], { cwd: work });
      expect(result.code, result.stderr).toBe(1);
      expect(logMessages(result.stderr)).toContain(`${target}/configs is a symbolic link (to ${linked}): a restore never writes through a link; remove the link, or restore into another folder; nothing was restored`);
      expect(await landscape()).toEqual(before);
    }
    expect(await fsp.readFile(path.join(linked, 'etc', 'app.conf'), 'utf8')).toBe('not from the backup\n');
  });

  it('a symlink to an empty folder is refused with a clear error, not a crash', async () => {
    const snapshot = await writeCraftedSnapshot(backupRoot, 'configs', tree);
    const empty = path.join(outside, 'empty');
    await fsp.mkdir(empty);
    await fsp.mkdir(target);
    await fsp.symlink(empty, path.join(target, 'configs'));
    const before = await landscape();
    const result = await runCli(['restore', snapshot.id, '--to', target], { cwd: work });
    expect(result.code).toBe(1);
    expect(logMessages(result.stderr)).toContain(`${target}/configs is a symbolic link (to ${empty})`);
    expect(result.stderr).not.toMatch(/ENOTDIR|\n\s+at /);
    expect(await landscape()).toEqual(before);
  });

  it('--force replaces what is there with the snapshot', async () => {
    const snapshot = await writeCraftedSnapshot(backupRoot, 'configs', tree);
    let result = await runCli(['restore', snapshot.id, '--to', target], { cwd: work });
    expect(result.code, result.stderr).toBe(0);
    const restored = await listTree(path.join(target, 'configs'));
    const etc = path.join(target, 'configs', 'etc');
    // Changes made since the backup: one file edited, one removed, one added.
    await fsp.writeFile(path.join(etc, 'app.conf'), 'port: 8080\n');
    await fsp.rm(path.join(etc, 'keep.conf'));
    await fsp.writeFile(path.join(etc, 'added.conf'), 'new\n');

    result = await runCli(['restore', snapshot.id, '--to', target], { cwd: work });
    expect(result.code).toBe(1);
    expect(logMessages(result.stderr)).toContain(`${target}/configs is not empty: restore into an empty folder, or pass --force to overwrite`);
    expect(await fsp.readFile(path.join(etc, 'app.conf'), 'utf8')).toBe('port: 8080\n');

    result = await runCli(['restore', snapshot.id, '--to', target, '--force'], { cwd: work });
    expect(result.code, result.stderr).toBe(0);
    expect(await listTree(path.join(target, 'configs'))).toEqual(restored);
    expect(await fsp.readFile(path.join(etc, 'app.conf'), 'utf8')).toBe('port: 80\n');
    expect(await fsp.readFile(path.join(etc, 'keep.conf'), 'utf8')).toBe('keep\n');
    expect((await fsp.readdir(target)).sort()).toEqual(['configs']);
  });

  it('a killed restore leaves a hidden folder that the next restore removes, not one in use or not its own', async () => {
    const big = await writeCraftedSnapshot(backupRoot, 'configs', [{ path: 'model.bin', type: 'File', body: randomBytes(128 * 1024 * 1024) }]);
    const small = await writeCraftedSnapshot(backupRoot, 'other', [{ path: 'a.txt', type: 'File', body: 'a\n' }]);
    await fsp.mkdir(target);
    const hidden = async () => (await fsp.readdir(target)).filter((n) => n.startsWith('.sutazai-restore-')).sort();
    // Stops a restore of the big snapshot as soon as its work folder is marked.
    const startStopped = async () => {
      const before = await hidden();
      const started = startCli(['restore', big.id, '--to', target], { cwd: work });
      for (;;) {
        const fresh = (await hidden()).filter((n) => !before.includes(n));
        if (fresh.length && existsSync(path.join(target, fresh[0]!, '.owner'))) {
          started.child.kill('SIGSTOP');
          return { ...started, work: fresh[0]! };
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    // A restore cleans up as it starts: the one in use first, then the one killed.
    const inUse = await startStopped();
    const killed = await startStopped();
    killed.child.kill('SIGKILL');
    await killed.result;
    const notOurs = path.join(target, '.sutazai-restore-Mine01');
    await fsp.mkdir(notOurs);
    await fsp.writeFile(path.join(notOurs, 'notes.txt'), 'mine\n');
    const old = new Date(Date.now() - 3600_000);
    await fsp.utimes(notOurs, old, old);
    expect(await hidden()).toEqual([killed.work, inUse.work, '.sutazai-restore-Mine01'].sort());

    try {
      const next = await runCli(['restore', small.id, '--to', target], { cwd: work });
      expect(next.code, next.stderr).toBe(0);
      expect(logMessages(next.stderr)).toContain(`removed ${target}/${killed.work}, left by an interrupted restore`);
      expect(logMessages(next.stderr)).toContain(`${notOurs} was not made by this version of the tool (no marker): left alone`);
      expect(await hidden()).toEqual([inUse.work, '.sutazai-restore-Mine01'].sort());
    } finally {
      inUse.child.kill('SIGCONT');
    }
    const resumed = await inUse.result;
    expect(resumed.code, resumed.stderr).toBe(0);
    expect((await fsp.stat(path.join(target, 'configs', 'model.bin'))).size).toBe(128 * 1024 * 1024);
    expect(await hidden()).toEqual(['.sutazai-restore-Mine01']);
    expect(await fsp.readFile(path.join(notOurs, 'notes.txt'), 'utf8')).toBe('mine\n');
  });
});

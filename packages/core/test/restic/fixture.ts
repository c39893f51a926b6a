import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A name that is not valid UTF-8 (a Latin-1 file name from an old system). */
export const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);

/**
 * A folder with every kind of entry restic records: files (empty, setuid, multi-chunk, hard
 * linked), folders (one sticky), relative, absolute and dangling symlinks, a FIFO, a socket
 * (restic skips it) and a character device, and names that need escaping.
 */
export async function makeFixture(root: string): Promise<void> {
  await mkdir(path.join(root, 'sub', 'deeper'), { recursive: true });
  await writeFile(path.join(root, 'a.txt'), 'hello\n');
  await chmod(path.join(root, 'a.txt'), 0o4755);
  await writeFile(path.join(root, 'empty'), '');
  await writeFile(path.join(root, 'sub', 'big'), randomBytes(3_000_000));
  await link(path.join(root, 'sub', 'big'), path.join(root, 'hard'));
  await writeFile(path.join(root, 'sub', 'deeper', 'note.md'), '# note\n');
  await chmod(path.join(root, 'sub', 'deeper'), 0o1777);
  await symlink('a.txt', path.join(root, 'link'));
  await symlink('/etc/passwd', path.join(root, 'abs'));
  await symlink('nowhere/at/all', path.join(root, 'dangling'));
  await writeFile(path.join(root, 'we"ird\\name<&>'), 'x');
  await writeFile(path.join(root, 'ctl\x01\x7f é\u2028\u00ad'), 'y');
  await writeFile(Buffer.concat([Buffer.from(`${root}/`), LATIN1_NAME]), 'latin-1');
  await writeFile(path.join(root, 'old'), 'from 2001');
  await utimes(path.join(root, 'old'), 978_307_200.123456, 978_307_200.123456);
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  execFileSync('mknod', [path.join(root, 'chr'), 'c', '1', '3']);
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path.join(root, 'sock')]);
}

export interface TreeDifference {
  path: string;
  what: string;
}

/**
 * Compares two trees entry by entry (lstat, never following links): type, permission bits,
 * mtime to the microsecond (what utimes keeps), file bytes, link targets. `expectLink` maps a
 * source link target to the one the restore should have written (absolute links are rewritten);
 * `skip` leaves out entries a restore does not create (FIFOs, devices, sockets). Names are
 * compared as bytes.
 */
export async function compareTrees(
  source: string,
  restored: string,
  options: { keepSetuid?: boolean; expectLink?: (linkPath: string, target: string) => string; skip?: (st: import('node:fs').Stats) => boolean } = {},
): Promise<TreeDifference[]> {
  const { lstat, readdir, readFile, readlink } = await import('node:fs/promises');
  const diffs: TreeDifference[] = [];
  const walk = async (a: Buffer, b: Buffer, rel: string): Promise<void> => {
    const names = (await readdir(a, { encoding: 'buffer' })).sort(Buffer.compare);
    const restoredNames = new Set((await readdir(b, { encoding: 'buffer' })).map((n) => n.toString('latin1')));
    for (const name of names) {
      const pa = Buffer.concat([a, Buffer.from('/'), name]);
      const pb = Buffer.concat([b, Buffer.from('/'), name]);
      const here = `${rel}/${name.toString()}`;
      const sa = await lstat(pa, { bigint: true });
      if (options.skip?.(await lstat(pa))) {
        if (restoredNames.has(name.toString('latin1'))) diffs.push({ path: here, what: 'should have been left out' });
        continue;
      }
      if (!restoredNames.delete(name.toString('latin1'))) {
        diffs.push({ path: here, what: 'missing' });
        continue;
      }
      const sb = await lstat(pb, { bigint: true });
      const type = (s: typeof sa) => (s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : 'other');
      if (type(sa) !== type(sb)) diffs.push({ path: here, what: `type ${type(sa)} became ${type(sb)}` });
      if (!sa.isSymbolicLink()) {
        const perm = Number(sa.mode) & (options.keepSetuid ? 0o7777 : 0o1777);
        if ((Number(sb.mode) & 0o7777) !== perm) diffs.push({ path: here, what: `mode ${perm.toString(8)} became ${(Number(sb.mode) & 0o7777).toString(8)}` });
      }
      if (sa.mtimeNs / 1000n !== sb.mtimeNs / 1000n) diffs.push({ path: here, what: `mtime ${sa.mtimeNs} became ${sb.mtimeNs}` });
      if (sa.isFile() && !(await readFile(pa)).equals(await readFile(pb))) diffs.push({ path: here, what: 'content differs' });
      if (sa.isSymbolicLink()) {
        const ta = (await readlink(pa)).toString();
        const want = options.expectLink ? options.expectLink(here, ta) : ta;
        const tb = (await readlink(pb)).toString();
        if (tb !== want) diffs.push({ path: here, what: `link ${want} became ${tb}` });
      }
      if (sa.isDirectory()) await walk(pa, pb, here);
    }
    for (const extra of restoredNames) diffs.push({ path: `${rel}/${Buffer.from(extra, 'latin1').toString()}`, what: 'not in the source' });
  };
  await walk(Buffer.from(source), Buffer.from(restored), '');
  return diffs;
}

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

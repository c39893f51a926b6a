/** Stock restic 0.14 (Debian 12's /usr/bin/restic) for interoperability tests, and snapshot trees built by hand. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { BlobStore } from '../../packages/core/src/restic/store.js';

/** Cheap scrypt for tests; real repositories use DEFAULT_KDF. */
export const TEST_KDF = { N: 1024, r: 8, p: 1 };
export const RESTIC = '/usr/bin/restic';

export const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

export interface ResticResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs stock restic against `repo` (a folder, `s3:…` or `sftp:…`), the password in a file as
 * users pass it, without a cache (so each run reads the repository itself).
 */
export async function restic(repo: string, password: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ResticResult> {
  const dir = await fsp.mkdtemp('/tmp/sutazai-restic-pw-');
  const passwordFile = path.join(dir, 'pw');
  await fsp.writeFile(passwordFile, password, { mode: 0o600 });
  try {
    return await new Promise((resolve) => {
      execFile(
        RESTIC,
        ['-r', repo, '--no-cache', ...args],
        { env: { PATH: process.env.PATH, HOME: dir, RESTIC_PASSWORD_FILE: passwordFile, ...env }, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

const TIME = '2024-05-06T07:08:09.123456789Z';

export interface HandFile {
  name: string;
  content: Buffer;
}

/**
 * A snapshot tree built by hand, as restic's tree JSON (`{"nodes":[...]}` and a newline): a
 * directory `dir` holding the given files, each split into chunks of `chunk` bytes. Until the
 * content half lands, this is what stands in for the archiver in these tests.
 */
export async function saveHandTree(store: BlobStore, dirName: string, files: HandFile[], chunk = 64 * 1024): Promise<string> {
  const nodes = [];
  for (const file of [...files].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const content: string[] = [];
    for (let at = 0; at < file.content.length; at += chunk) {
      const piece = file.content.subarray(at, at + chunk);
      content.push(sha(piece));
      await store.save('data', sha(piece), piece);
    }
    nodes.push({ ...meta(file.name, 'file', 0o644), size: file.content.length, links: 1, content });
  }
  const subtree = await saveTree(store, nodes);
  return saveTree(store, [{ ...meta(dirName, 'dir', 0x80000000 + 0o755), content: null, subtree }]);
}

function meta(name: string, type: string, mode: number) {
  return { name, type, mode, mtime: TIME, atime: TIME, ctime: TIME, uid: 0, gid: 0, user: 'root', group: 'root', inode: 1 };
}

async function saveTree(store: BlobStore, nodes: unknown[]): Promise<string> {
  const tree = Buffer.from(`${JSON.stringify({ nodes })}\n`);
  await store.save('tree', sha(tree), tree);
  return sha(tree);
}

/** Follows a snapshot tree down `absolute`'s path (as restic stores `restic backup /a/b`) and returns the last node. */
export async function nodeAt(store: BlobStore, tree: string, absolute: string): Promise<{ name: string; type: string; subtree?: string }> {
  let node: { name: string; type: string; subtree?: string } | undefined;
  for (const name of absolute.split('/').filter(Boolean)) {
    const nodes = JSON.parse((await store.load('tree', node ? (node.subtree as string) : tree)).toString()).nodes as (typeof node)[];
    node = nodes.find((n) => n?.name === name);
    if (!node) throw new Error(`${absolute}: no ${name} in the snapshot tree`);
  }
  return node as { name: string; type: string };
}

export function snapshotJson(tree: string, paths: string[]): Record<string, unknown> {
  return { time: TIME, tree, paths, hostname: 'test-host', username: 'root', tags: ['sutazai'] };
}

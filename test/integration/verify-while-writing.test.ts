// Verification of large artifacts while they are written (core's FollowingVerifier): a thread
// reads the file behind the writer. Runs against the built core, whose worker thread module is
// JavaScript (under the test runner's TypeScript sources the engine verifies after writing).
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, tempDir, writeRc } from '../helpers/cli.js';

const dist = (file: string) => path.join(REPO_ROOT, 'packages/core/dist', file);
const { writeArtifact } = (await import(dist('pipeline/archive.js'))) as typeof import('../../packages/core/src/pipeline/archive.js');
const { tarPieces } = (await import(dist('pipeline/tar-pack.js'))) as typeof import('../../packages/core/src/pipeline/tar-pack.js');
const { looksIncompressible } = (await import(dist('pipeline/encoder.js'))) as typeof import('../../packages/core/src/pipeline/encoder.js');
const { FollowingVerifier, checkStoredScan } = (await import(dist('pipeline/follow-verify.js'))) as typeof import('../../packages/core/src/pipeline/follow-verify.js');

let work: string;
let tree: string;

beforeAll(async () => {
  work = await tempDir();
  tree = path.join(work, 'data');
  await fsp.mkdir(path.join(tree, 'logs'), { recursive: true });
  await fsp.writeFile(path.join(tree, 'model.bin'), randomBytes(20 * 1024 * 1024));
  for (let i = 0; i < 20; i++) await fsp.writeFile(path.join(tree, 'logs', `app-${i}.log`), `line ${i}: request served in 12 ms\n`.repeat(20000));
  await fsp.symlink('model.bin', path.join(tree, 'current'));
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

const sha256 = async (file: string) => createHash('sha256').update(await fsp.readFile(file)).digest('hex');

async function writeTreeArtifact(file: string, onStored?: (bytes: number) => void) {
  return writeArtifact(tarPieces([tree], { isIncompressible: looksIncompressible }), file, { compression: 'zstd', ...(onStored ? { onStored } : {}) });
}

describe('verifying while writing', () => {
  it('reads the artifact behind the writer and finds what was written', async () => {
    expect(FollowingVerifier.available).toBe(true);
    const file = path.join(work, 'followed.tar.zst');
    let verifier: InstanceType<typeof FollowingVerifier> | undefined;
    const reported: number[] = [];
    const written = await writeTreeArtifact(file, (bytes) => {
      reported.push(bytes);
      verifier ??= new FollowingVerifier(file, { compression: 'zstd', label: 'test: followed', tree: true });
      verifier.advance(bytes);
    });
    // The writer reported a growing prefix, ending with the whole file.
    expect(reported.length).toBeGreaterThan(1);
    expect(reported).toEqual([...reported].sort((a, b) => a - b));
    expect(reported.at(-1)).toBe(written.bytes);
    const outcome = await verifier!.finish();
    expect(outcome).toMatchObject({ bytes: written.bytes, sha256: await sha256(file), decoded: written.rawBytes });
    expect(checkStoredScan(outcome, written, 'test: followed')).toEqual({ files: 21, directories: 2, symlinks: 1, bytes: expect.any(Number) });
  });

  it('reads only what the writer has finished, not the rest of the file', async () => {
    const file = path.join(work, 'partial.tar.zst');
    const written = await writeTreeArtifact(file);
    const content = await fsp.readFile(file);
    const half = Math.floor(written.bytes / 2);
    // The second half is garbage until the "writer" says it is written.
    await fsp.writeFile(file, Buffer.concat([content.subarray(0, half), randomBytes(written.bytes - half)]));
    const verifier = new FollowingVerifier(file, { compression: 'zstd', label: 'test: partial', tree: true });
    verifier.advance(half);
    // Time for the reader to read all it was allowed to (and more, were it to look further).
    await new Promise((r) => setTimeout(r, 500));
    const handle = await fsp.open(file, 'r+');
    await handle.write(content, half, written.bytes - half, half);
    await handle.close();
    verifier.advance(written.bytes);
    const outcome = await verifier.finish();
    expect(checkStoredScan(outcome, written, 'test: partial')).toMatchObject({ files: 21, directories: 2, symlinks: 1 });
  });

  it('fails on bytes that changed on disk after they were written, naming the artifact', async () => {
    const file = path.join(work, 'altered.tar.zst');
    const written = await writeTreeArtifact(file);
    const handle = await fsp.open(file, 'r+');
    await handle.write(Buffer.from([0x55]), 0, 1, Math.floor(written.bytes / 3));
    await handle.close();
    const verifier = new FollowingVerifier(file, { compression: 'zstd', label: 'staging: x/altered.tar.zst', tree: true });
    verifier.advance(written.bytes);
    const outcome = await verifier.finish();
    expect(() => checkStoredScan(outcome, written, 'staging: x/altered.tar.zst')).toThrow(/staging: x\/altered.tar.zst: sha256 mismatch/);
  });

  it('fails on stored bytes that do not decode, or a tar that does not parse, even when the sha256 matches', async () => {
    const cases: [string, Buffer, 'zstd' | 'none', RegExp][] = [
      ['garbage.tar.zst', randomBytes(3 * 1024 * 1024), 'zstd', /test: garbage.tar.zst: cannot be decoded/],
      ['garbage.tar', Buffer.alloc(3 * 1024 * 1024, 0x41), 'none', /test: garbage.tar: .*checksum failure/],
    ];
    for (const [name, content, compression, message] of cases) {
      const file = path.join(work, name);
      await fsp.writeFile(file, content);
      const record = { bytes: content.length, sha256: await sha256(file), rawBytes: content.length };
      const verifier = new FollowingVerifier(file, { compression, label: `test: ${name}`, tree: true });
      verifier.advance(record.bytes);
      const outcome = await verifier.finish();
      expect(outcome).toMatchObject({ bytes: record.bytes, sha256: record.sha256 });
      expect(() => checkStoredScan(outcome, record, `test: ${name}`)).toThrow(message);
    }
  });

  it('decrypts in the thread too (the encryption stage says how): finds what was written, and refuses altered ciphertext whose sha256 matches', async () => {
    const gpgDist = path.join(REPO_ROOT, 'plugins/gpg/dist/openpgp.js');
    const { OpenPgpEncryptor } = (await import(gpgDist)) as typeof import('../../plugins/gpg/src/openpgp.js');
    const passphrase = Buffer.from('a long test passphrase');
    const decoder = { module: pathToFileURL(gpgDist).href, data: { passphrase: new Uint8Array(passphrase), label: 'test: encrypted' } };
    const file = path.join(work, 'encrypted.tar.zst.gpg');
    let verifier: InstanceType<typeof FollowingVerifier> | undefined;
    const written = await writeArtifact(tarPieces([tree], { isIncompressible: looksIncompressible }), file, {
      compression: 'zstd',
      chunked: new OpenPgpEncryptor(passphrase),
      onStored: (bytes) => {
        verifier ??= new FollowingVerifier(file, { compression: 'zstd', label: 'test: encrypted', tree: true, decoder });
        verifier.advance(bytes);
      },
    });
    const outcome = await verifier!.finish();
    expect(checkStoredScan(outcome, written, 'test: encrypted')).toMatchObject({ files: 21, directories: 2, symlinks: 1 });

    // Altered ciphertext recorded with its own sha256: only the decryption can tell.
    const altered = await fsp.readFile(file);
    altered[altered.length - 3]! ^= 0x01;
    await fsp.writeFile(file, altered);
    const record = { bytes: altered.length, sha256: createHash('sha256').update(altered).digest('hex'), rawBytes: written.rawBytes };
    const again = new FollowingVerifier(file, { compression: 'zstd', label: 'test: encrypted', tree: true, decoder });
    again.advance(record.bytes);
    // (What was read while writing no longer matches the altered file.)
    expect(() => checkStoredScan(outcome, record, 'x')).toThrow(/sha256 mismatch/);
    const failed = await again.finish();
    expect(() => checkStoredScan(failed, record, 'test: encrypted')).toThrow(/test: encrypted: the integrity check \(MDC\) failed/);
  });

  it('a run verifies a large artifact while it is written, and the snapshot verifies again afterwards', async () => {
    await writeRc(work, `backupRoot: ./repo\nsources:\n  data: { use: files, paths: [./data] }\n`);
    const r = await runCli(['run', '--json', '--log-level', 'debug'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/verifying data\.tar\.zst while it is written/);
    expect(r.json().stages.verify.status).toBe('ok');
    const v = await runCli(['verify', 'latest', '--json'], { cwd: work });
    expect(v.code, v.stderr).toBe(0);
    expect(v.json().snapshots[0].artifacts[0].checks).toEqual([
      { name: 'sha256', ok: true },
      { name: 'tar', ok: true, detail: '21 files, 2 folders, 1 symlinks' },
    ]);
  });

  it('an encrypted run verifies its artifact while it is written too, and it restores', async () => {
    const dir = path.join(work, 'encrypted-run');
    await fsp.mkdir(dir);
    await writeRc(dir, `backupRoot: ./repo\nencryption: { use: gpg, passphrase: "\${PW}" }\nsources:\n  data: { use: files, paths: [${tree}] }\n`);
    const env = { PW: 'a long test passphrase for the run' };
    const r = await runCli(['run', '--json', '--log-level', 'debug'], { cwd: dir, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/verifying data\.tar\.zst\.gpg while it is written/);
    expect(r.json().stages.verify.status).toBe('ok');
    const restored = path.join(dir, 'restored');
    const restore = await runCli(['restore', 'latest', '--to', restored], { cwd: dir, env });
    expect(restore.code, restore.stderr).toBe(0);
    expect(await sha256(path.join(restored, 'data', tree, 'model.bin'))).toBe(await sha256(path.join(tree, 'model.bin')));
  });
});

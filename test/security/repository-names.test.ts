/**
 * Names read from a repository never become paths outside the tool's folders. Whoever can write
 * to an unencrypted repository (or one in recipients mode without a signing key) can rewrite a
 * manifest: a `filename` of `../../../x` must make verify and restore fail on the manifest, not
 * write the artifact's bytes wherever the name points (as root: anywhere).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logMessages, runCli, tempDir, writeRc } from '../helpers/cli.js';
import { listTree } from '../helpers/crafted-repo.js';

let work: string;
let outside: string;
let snapshot: string;
let manifestFile: string;

/** Everything outside the repository, which no attack may change. */
const landscape = async () => (await listTree(work)).filter((p) => !p.startsWith('backups'));

beforeAll(async () => {
  work = await tempDir('sutazai-repo-names-');
  outside = path.join(work, 'outside');
  await fsp.mkdir(outside);
  // verify runs the source's own check on the artifact's bytes: a file made from `filename`.
  await writeRc(work, `backupRoot: ./backups\nsources:\n  dump:\n    use: command\n    command: [printf, 'planted by the repository']\n    check: [cat]\n`);
  const r = await runCli(['run', '--json'], { cwd: work });
  expect(r.code, r.stderr).toBe(0);
  snapshot = r.json().snapshot;
  manifestFile = path.join(work, 'backups', 'snapshots', snapshot, 'manifest.json');
  // What an attacker with write access to the repository does: the artifact stays intact (its
  // size and sha256 still match), only the name it is restored by changes.
  const manifest = JSON.parse(await fsp.readFile(manifestFile, 'utf8'));
  const depth = path.join(work, 'backups', 'staging', 'scratch-x').split('/').length + 2;
  manifest.artifacts[0].filename = `${'../'.repeat(depth)}${outside.slice(1)}/planted`;
  await fsp.writeFile(manifestFile, JSON.stringify(manifest, null, 2));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

const refusal = () => new RegExp(`backupRoot: snapshots/${snapshot}/manifest\\.json: manifest is not valid: artifacts\\.0\\.filename: a plain file name .*\\("(\\.\\./)+.*/outside/planted"\\)`);

describe('a manifest whose filename leads outside', () => {
  it('verify refuses it and writes nothing outside', async () => {
    const before = await landscape();
    const r = await runCli(['verify', snapshot], { cwd: work });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout + logMessages(r.stderr)).toMatch(refusal());
    await expect(fsp.access(path.join(outside, 'planted'))).rejects.toThrow();
    expect(await landscape()).toEqual(before);
  });

  it('restore --to refuses it and writes nothing', async () => {
    const before = await landscape();
    const r = await runCli(['restore', snapshot, '--to', path.join(work, 'restored')], { cwd: work });
    expect(r.code).toBe(1);
    expect(logMessages(r.stderr)).toMatch(refusal());
    expect(await landscape()).toEqual(before);
  });

  it('restore --into refuses it before any plugin gets the artifact', async () => {
    const before = await landscape();
    const r = await runCli(['restore', snapshot, '--source', 'dump', '--into', 'postgres://127.0.0.1:1/x'], { cwd: work });
    expect(r.code).toBe(1);
    expect(logMessages(r.stderr)).toMatch(refusal());
    expect(await landscape()).toEqual(before);
  });

  it('the untouched manifest verifies, so the refusal is the name alone', async () => {
    const manifest = JSON.parse(await fsp.readFile(manifestFile, 'utf8'));
    const tampered = manifest.artifacts[0].filename;
    manifest.artifacts[0].filename = 'dump.out';
    await fsp.writeFile(manifestFile, JSON.stringify(manifest, null, 2));
    try {
      const r = await runCli(['verify', snapshot, '--json'], { cwd: work });
      expect(r.code, r.stderr).toBe(0);
      expect(r.json().snapshots[0].artifacts[0].checks).toEqual(expect.arrayContaining([{ name: 'check', ok: true, detail: 'exited 0' }]));
      const stored = await fsp.readFile(path.join(path.dirname(manifestFile), manifest.artifacts[0].file));
      expect(createHash('sha256').update(stored).digest('hex')).toBe(manifest.artifacts[0].sha256);
    } finally {
      manifest.artifacts[0].filename = tampered;
      await fsp.writeFile(manifestFile, JSON.stringify(manifest, null, 2));
    }
  });
});

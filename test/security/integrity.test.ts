/**
 * Authenticated manifests without encryption (`integrity: { key }`). The attacker can write to
 * the repository (backupRoot, or a destination such as a shared drive or a bucket): they swap an
 * archive for one of their own and rewrite the manifest's sha256 and sizes to match. With
 * integrity configured, verify, restore and restore-test refuse; without it, the swap verifies,
 * and `status` warns that nothing authenticates the manifests.
 *
 * The attacker's edits are made by this test process: what matters is what is in the files, not
 * which user wrote them (the tool never trusts a repository for who owns it).
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeTree } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeRc } from '../helpers/cli.js';

const KEY = 'integrity-key-5b1e0c9d7a3f4e21';
const env = { SUTAZAI_BACKUP_INTEGRITY_KEY: KEY };

const rc = (integrity: boolean) => `backupRoot: ./backups
host: integrity
retention: { last: 10 }
${integrity ? 'integrity: { key: "${SUTAZAI_BACKUP_INTEGRITY_KEY}" }\n' : ''}sources:
  configs: { use: files, paths: [./src] }
destinations:
  drive: { use: local, path: ./drive }
`;

type Json = Record<string, any>;

async function manifestOf(root: string, id: string): Promise<Json> {
  return JSON.parse(await fsp.readFile(path.join(root, 'snapshots', id, 'manifest.json'), 'utf8'));
}

async function writeManifest(root: string, id: string, manifest: Json): Promise<void> {
  await fsp.writeFile(path.join(root, 'snapshots', id, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
}

async function latestId(root: string): Promise<string> {
  return (await fsp.readdir(path.join(root, 'snapshots'))).sort().at(-1)!;
}

/**
 * The attacker's archive: a real backup of their own files by the same tool, with the victim's
 * source name, so that it decodes and extracts cleanly in the victim's repository.
 */
async function attackerArchive(base: string): Promise<{ file: Buffer; record: Json }> {
  const dir = path.join(base, 'attacker');
  await writeTree(path.join(dir, 'src'), { 'app.yml': 'admin_password: planted-by-the-attacker\n' });
  await writeRc(dir, `backupRoot: ./backups\nhost: integrity\nsources:\n  configs: { use: files, paths: [./src] }\n`);
  const run = await runCli(['run'], { cwd: dir });
  expect(run.code, run.stderr).toBe(0);
  const root = path.join(dir, 'backups');
  const id = await latestId(root);
  const record = (await manifestOf(root, id)).artifacts[0];
  return { file: await fsp.readFile(path.join(root, 'snapshots', id, record.file)), record };
}

/** Puts the attacker's archive in place of snapshot `id`'s and makes the manifest's sha256 and sizes match it. */
async function swap(root: string, id: string, attack: { file: Buffer; record: Json }): Promise<void> {
  const manifest = await manifestOf(root, id);
  const victim = manifest.artifacts[0];
  await fsp.writeFile(path.join(root, 'snapshots', id, victim.file), attack.file);
  for (const field of ['bytes', 'sha256', 'rawBytes', 'meta']) victim[field] = attack.record[field];
  await writeManifest(root, id, manifest);
}

describe('integrity: authenticated manifests without encryption', () => {
  let base: string;
  let attack: { file: Buffer; record: Json };

  beforeAll(async () => {
    base = await tempDir('sutazai-integrity-');
    attack = await attackerArchive(base);
  });
  afterAll(async () => {
    await fsp.rm(base, { recursive: true, force: true });
  });

  async function project(name: string, integrity: boolean): Promise<string> {
    const dir = path.join(base, name);
    await writeTree(path.join(dir, 'src'), { 'app.yml': 'admin_password: the-real-one\n' });
    await writeRc(dir, rc(integrity));
    return dir;
  }

  it('a swapped archive with a rewritten sha256 and size: verify, restore and restore-test refuse it, at backupRoot and at the destination', async () => {
    const dir = await project('swapped', true);
    const run = await runCli(['run', '--json'], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(0);
    const id = run.json().snapshot as string;
    const stored = await manifestOf(path.join(dir, 'backups'), id);
    expect(stored.authentication).toMatchObject({ method: 'integrity', scheme: 'hmac-sha256', kdf: 'scrypt' });
    expect(JSON.stringify(stored)).not.toContain(KEY);
    expect((await runCli(['verify', '--from', 'drive'], { cwd: dir, env })).code).toBe(0);

    for (const root of [path.join(dir, 'backups'), path.join(dir, 'drive', 'integrity')]) await swap(root, id, attack);

    for (const from of [[], ['--from', 'drive']]) {
      const verify = await runCli(['verify', 'latest', '--json', ...from], { cwd: dir, env });
      expect(verify.code, verify.stderr).toBe(1);
      expect(verify.json().snapshots[0]).toMatchObject({ id, ok: false });
      expect(verify.json().snapshots[0].error).toMatch(/the manifest cannot be trusted: its HMAC does not match: it was altered/);

      const to = path.join(dir, `restored${from.length ? '-drive' : ''}`);
      const restore = await runCli(['restore', 'latest', '--to', to, ...from], { cwd: dir, env });
      expect(restore.code).toBe(1);
      expect(restore.stderr).toMatch(/its HMAC does not match/);
      expect(existsSync(path.join(to, 'configs'))).toBe(false);

      const test = await runCli(['restore-test', 'latest', '--json', ...from], { cwd: dir, env });
      expect(test.code).toBe(1);
      expect(test.stderr + test.stdout).toMatch(/its HMAC does not match/);
    }
  });

  it('without integrity the same swap verifies and restores the attacker\'s file, and status warns', async () => {
    const dir = await project('unauthenticated', false);
    const run = await runCli(['run', '--json'], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    const id = run.json().snapshot as string;
    await swap(path.join(dir, 'backups'), id, attack);
    expect((await runCli(['verify', 'latest'], { cwd: dir })).code).toBe(0);
    expect((await runCli(['restore', 'latest', '--to', path.join(dir, 'restored')], { cwd: dir })).code).toBe(0);
    // The attacker's tree, under their own absolute path.
    const restored = await fsp.readFile(path.join(dir, 'restored', 'configs', path.join(base, 'attacker', 'src', 'app.yml').slice(1)), 'utf8');
    expect(restored).toContain('planted-by-the-attacker');

    const status = await runCli(['status', '--json'], { cwd: dir });
    const check = status.json().checks.find((c: Json) => c.name === 'authentication');
    expect(check).toMatchObject({ ok: true, warning: true });
    expect(check.detail).toMatch(/neither encrypted nor authenticated.*integrity: \{ key: \$\{SUTAZAI_BACKUP_INTEGRITY_KEY\} \}/);
    const text = await runCli(['status'], { cwd: dir });
    expect(text.stdout).toMatch(/^ {2}WARN authentication: manifests are neither encrypted nor authenticated/m);

    // With integrity configured the same check passes without a warning.
    await writeRc(dir, rc(true));
    const authenticated = (await runCli(['status', '--json'], { cwd: dir, env })).json().checks.find((c: Json) => c.name === 'authentication');
    expect(authenticated).toEqual({ name: 'authentication', ok: true, detail: 'manifests are authenticated (integrity.key, HMAC-SHA256)' });
  });

  it('refuses a stripped authenticator, a manifest moved to another snapshot, a wrong key, and snapshots from before integrity', async () => {
    const dir = await project('others', false);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    const root = path.join(dir, 'backups');
    const before = await latestId(root);
    await writeRc(dir, rc(true));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const run = await runCli(['run', '--json'], { cwd: dir, env });
      expect(run.code, run.stderr).toBe(0);
      ids.push(run.json().snapshot);
    }
    const [stripped, moved, intact] = ids as [string, string, string];

    const m = await manifestOf(root, stripped);
    delete m.authentication;
    await writeManifest(root, stripped, m);

    // The manifest (and archive) of `intact`, made to pass for `moved`: the id is inside and covered.
    const copy = await manifestOf(root, intact);
    copy.id = moved;
    await writeManifest(root, moved, copy);
    await fsp.copyFile(path.join(root, 'snapshots', intact, copy.artifacts[0].file), path.join(root, 'snapshots', moved, copy.artifacts[0].file));

    const verify = await runCli(['verify', '--all', '--json'], { cwd: dir, env });
    expect(verify.code).toBe(1);
    const byId = Object.fromEntries((verify.json().snapshots as Json[]).map((s) => [s.id, s]));
    expect(byId[before].error).toMatch(/not authenticated, but integrity.key is configured .*before integrity was turned on/);
    expect(byId[stripped].error).toMatch(/not authenticated, but integrity.key is configured/);
    expect(byId[moved].error).toMatch(/its HMAC does not match/);
    expect(byId[intact].ok).toBe(true);

    const wrong = await runCli(['verify', intact], { cwd: dir, env: { SUTAZAI_BACKUP_INTEGRITY_KEY: `${KEY}-but-wrong` } });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/integrity.key is not the key it was written with/);
    for (const o of [verify, wrong]) expect(o.stdout + o.stderr).not.toContain(KEY);

    // Encryption turned on in place of integrity: the gpg plugin names what it found.
    await writeRc(dir, `${rc(false)}encryption: { use: gpg, passphrase: "\${PW}" }\n`);
    const switched = await runCli(['verify', intact], { cwd: dir, env: { PW: 'a passphrase for gpg' } });
    expect(switched.code).toBe(1);
    expect(switched.stderr).toMatch(/authenticated by integrity, not by the encryption/);
  });

  it('is a config error next to encryption, and with a short key; config show masks the key', async () => {
    const dir = await project('config', true);
    const show = await runCli(['config', 'show'], { cwd: dir, env });
    expect(show.code, show.stderr).toBe(0);
    expect(show.json().config.integrity).toEqual({ key: '***' });
    expect(show.stdout + show.stderr).not.toContain(KEY);

    const short = await runCli(['config', 'validate'], { cwd: dir, env: { SUTAZAI_BACKUP_INTEGRITY_KEY: 'short' } });
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/integrity\.key: a key of at least 16 characters/);

    await writeRc(dir, `${rc(true)}encryption: { use: gpg, passphrase: "\${PW}" }\n`);
    const both = await runCli(['config', 'validate'], { cwd: dir, env: { ...env, PW: 'a passphrase for gpg' } });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/integrity: not used with encryption: the encryption plugin authenticates manifests/);
  });
});

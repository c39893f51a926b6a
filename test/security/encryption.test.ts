/**
 * Encrypted backups through the real CLI: restore through the tool and through stock gpg; a wrong
 * passphrase, truncation, bit flips and edited or swapped manifests are caught, and the restore
 * target is never touched when they are.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parseManifest, serializeManifest, type Manifest } from '../../packages/core/src/manifest.js';
import { authenticateManifest, AUTHENTICATION_FIELD } from '@sutazai/backup-plugin-gpg';
import { describeTree, writeTree } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeKey, writeKey, type TestKey } from '../../plugins/gpg/test/keys.js';
import { logMessages, runCli, tempDir, writeRc } from '../helpers/cli.js';
import { listTree } from '../helpers/crafted-repo.js';

const PASSPHRASE = `correct horse ${randomBytes(6).toString('hex')}`;

let work: string;
let src: string;

async function makeSource(dir: string) {
  await writeTree(dir, {
    'app.yml': 'port: 8080\n',
    data: { 'model.bin': randomBytes(1024 * 1024), 'notes.txt': 'hello\n' },
    current: { symlink: 'data' },
  });
}

const snapshotDir = (root: string, id: string) => path.join(root, 'snapshots', id);

async function readManifest(root: string, id: string): Promise<Manifest> {
  return parseManifest(await fsp.readFile(path.join(snapshotDir(root, id), 'manifest.json'), 'utf8'), id);
}

async function writeManifest(root: string, manifest: Manifest): Promise<void> {
  await fsp.writeFile(path.join(snapshotDir(root, manifest.id), 'manifest.json'), serializeManifest(manifest));
}

/** What an attacker who knows the passphrase (or a test) writes: the manifest authenticated again after an edit. */
async function reauthenticate(manifest: Manifest, passphrase: string): Promise<Manifest> {
  const copy = { ...manifest } as Record<string, unknown>;
  delete copy[AUTHENTICATION_FIELD];
  copy[AUTHENTICATION_FIELD] = await authenticateManifest(copy as Manifest, { passphrase: Buffer.from(passphrase) });
  return copy as Manifest;
}

beforeAll(async () => {
  work = await tempDir('sutazai-encryption-');
  src = path.join(work, 'src');
  await makeSource(src);
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('symmetric (passphrase)', () => {
  let dir: string;
  let root: string;
  let id: string;
  let artifact: string;
  const env = { BACKUP_ENCRYPTION_PASSPHRASE: PASSPHRASE };

  beforeAll(async () => {
    dir = path.join(work, 'symmetric');
    root = path.join(dir, 'backups');
    await fsp.mkdir(dir);
    await writeRc(dir, `backupRoot: ./backups\nhost: enc\nretention: { last: 10 }\nencryption: { use: gpg, passphrase: "\${BACKUP_ENCRYPTION_PASSPHRASE}" }\nsources:\n  configs: { use: files, paths: [${src}] }\n`);
    const run = await runCli(['run', '--json'], { cwd: dir, env });
    expect(run.code, run.stderr).toBe(0);
    id = run.json().snapshot;
    artifact = path.join(snapshotDir(root, id), 'configs.tar.zst.gpg');
  });

  it('records how each artifact is encrypted, never the key', async () => {
    const text = await fsp.readFile(path.join(snapshotDir(root, id), 'manifest.json'), 'utf8');
    const manifest = JSON.parse(text);
    expect(manifest.artifacts[0].file).toBe('configs.tar.zst.gpg');
    expect(manifest.artifacts[0].encryption).toEqual({ method: 'gpg', mode: 'symmetric', cipher: 'AES256' });
    expect(manifest.authentication).toMatchObject({ method: 'gpg', scheme: 'hmac-sha256', kdf: 's2k-sha256' });
    expect(text).not.toContain(PASSPHRASE);
    // Encrypted: the artifact does not hold the plain zstd frame magic.
    expect((await fsp.readFile(artifact)).subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe(false);
  });

  it('restores through the tool', async () => {
    const to = path.join(dir, 'restored');
    const result = await runCli(['restore', id, '--to', to], { cwd: dir, env });
    expect(result.code, result.stderr).toBe(0);
    expect(await describeTree(path.join(to, 'configs', src))).toEqual(await describeTree(src));
  });

  it('restores through stock gpg, zstd and tar', async () => {
    const to = path.join(dir, 'stock');
    await fsp.mkdir(to);
    const r = spawnSync('sh', ['-c', `gpg --batch --quiet --homedir "$H" --passphrase-fd 3 --decrypt "$F" 3<<EOF | zstd -d | tar -x -C "$T"\n$P\nEOF`], {
      env: { PATH: process.env.PATH, H: await fsp.mkdtemp(path.join(work, 'gnupg-')), F: artifact, T: to, P: PASSPHRASE },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(await describeTree(path.join(to, src.slice(1)))).toEqual(await describeTree(src));
  });

  it('encrypts with gzip compression too (gzip is a stream stage: so is the encryption after it)', async () => {
    const gzDir = path.join(work, 'symmetric-gzip');
    await fsp.mkdir(gzDir);
    await writeRc(gzDir, `backupRoot: ./backups\nhost: enc\ncompression: gzip\nencryption: { use: gpg, passphrase: "\${BACKUP_ENCRYPTION_PASSPHRASE}" }\nsources:\n  configs: { use: files, paths: [${src}] }\n`);
    const run = await runCli(['run', '--json'], { cwd: gzDir, env });
    expect(run.code, run.stderr).toBe(0);
    const file = path.join(snapshotDir(path.join(gzDir, 'backups'), run.json().snapshot), 'configs.tar.gz.gpg');
    const bytes = await fsp.readFile(file);
    expect(bytes.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])), 'not a plain gzip stream').toBe(false);
    expect(bytes.includes(Buffer.from('port: 8080'))).toBe(false);
    const r = spawnSync('sh', ['-c', `gpg --batch --quiet --homedir "$H" --passphrase-fd 3 --decrypt "$F" 3<<EOF | gzip -d | tar -t\n$P\nEOF`], {
      env: { PATH: process.env.PATH, H: await fsp.mkdtemp(path.join(work, 'gnupg-')), F: file, P: PASSPHRASE },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('app.yml');
    const to = path.join(gzDir, 'restored');
    const restore = await runCli(['restore', 'latest', '--to', to], { cwd: gzDir, env });
    expect(restore.code, restore.stderr).toBe(0);
    expect(await describeTree(path.join(to, 'configs', src))).toEqual(await describeTree(src));
  });

  it('a wrong passphrase fails before the target is touched', async () => {
    const to = path.join(dir, 'wrong');
    const wrong = { BACKUP_ENCRYPTION_PASSPHRASE: 'a wrong passphrase' };
    let result = await runCli(['restore', id, '--to', to], { cwd: dir, env: wrong });
    expect(result.code).toBe(1);
    expect(logMessages(result.stderr)).toMatch(/manifest cannot be trusted: its HMAC does not match: it was altered, or encryption\.passphrase is not the passphrase it was written with/);
    await expect(fsp.access(to)).rejects.toThrow();

    // Past the manifest (authenticated with the wrong passphrase too), gpg itself refuses, and the
    // existing content of the target is left as it was.
    const original = await fsp.readFile(path.join(snapshotDir(root, id), 'manifest.json'));
    await writeManifest(root, await reauthenticate(await readManifest(root, id), 'a wrong passphrase'));
    await fsp.mkdir(to);
    await fsp.writeFile(path.join(to, 'keep.txt'), 'mine');
    const before = await listTree(to);
    result = await runCli(['restore', id, '--to', to], { cwd: dir, env: wrong });
    await fsp.writeFile(path.join(snapshotDir(root, id), 'manifest.json'), original);
    expect(result.code, 'a wrong passphrase is a config error').toBe(2);
    expect(logMessages(result.stderr)).toMatch(/cannot decrypt: wrong passphrase \(encryption\.passphrase\)/);
    expect(await listTree(to)).toEqual(before);
  });

  describe('damaged artifacts', () => {
    let copyRoot: string;
    let copyDir: string;
    const damaged = async (damage: (bytes: Buffer) => Buffer, opts: { reauthenticate?: boolean } = {}) => {
      copyDir = path.join(dir, `damaged-${randomBytes(3).toString('hex')}`);
      copyRoot = path.join(copyDir, 'backups');
      await fsp.cp(root, copyRoot, { recursive: true });
      await fsp.copyFile(path.join(dir, '.sutazai-backuprc'), path.join(copyDir, '.sutazai-backuprc'));
      const file = path.join(snapshotDir(copyRoot, id), 'configs.tar.zst.gpg');
      const bytes = damage(await fsp.readFile(file));
      await fsp.writeFile(file, bytes);
      if (opts.reauthenticate) {
        // The sha256 and size in the manifest made to match: only gpg's integrity check is left.
        const manifest = await readManifest(copyRoot, id);
        const { createHash } = await import('node:crypto');
        manifest.artifacts[0]!.sha256 = createHash('sha256').update(bytes).digest('hex');
        manifest.artifacts[0]!.bytes = bytes.length;
        await writeManifest(copyRoot, await reauthenticate(manifest, PASSPHRASE));
      }
    };
    const expectCaught = async (message: RegExp) => {
      const verify = await runCli(['verify', id, '--json'], { cwd: copyDir, env });
      expect(verify.code).toBe(1);
      expect(verify.json().snapshots[0].artifacts[0].error).toMatch(message);
      const to = path.join(copyDir, 'restored');
      const restore = await runCli(['restore', id, '--to', to], { cwd: copyDir, env });
      expect(restore.code).toBe(1);
      expect(logMessages(restore.stderr)).toMatch(message);
      await expect(fsp.access(to)).rejects.toThrow();
    };

    it('truncation', async () => {
      await damaged((b) => b.subarray(0, b.length - 1000));
      await expectCaught(/truncated: \d+ of \d+ bytes/);
    });

    it('a flipped bit', async () => {
      await damaged((b) => {
        b[Math.floor(b.length / 2)]! ^= 0x10;
        return b;
      });
      await expectCaught(/sha256 mismatch/);
    });

    it('a flipped bit in the OpenPGP integrity code (MDC), with a matching checksum, fails its check', async () => {
      // The last bytes are the (encrypted) MDC: the plaintext decrypts intact, only gpg's check fails.
      await damaged(
        (b) => {
          b[b.length - 5]! ^= 0x01;
          return b;
        },
        { reauthenticate: true },
      );
      await expectCaught(/configs\.tar\.zst\.gpg: the integrity check \(MDC\) failed: the encrypted data was altered/);
    });

    it('a flipped bit in the data, with a matching checksum, fails decoding', async () => {
      await damaged(
        (b) => {
          b[Math.floor(b.length / 2)]! ^= 0x01;
          return b;
        },
        { reauthenticate: true },
      );
      await expectCaught(/configs\.tar\.zst\.gpg: .*(integrity check|cannot be decoded|cannot be read)/);
    });

    it('a truncation with a matching checksum still fails', async () => {
      await damaged((b) => b.subarray(0, b.length - 4096), { reauthenticate: true });
      await expectCaught(/configs\.tar\.zst\.gpg: .*truncated/);
    });
  });

  it('an edited or swapped manifest is refused by verify and restore', async () => {
    const second = await runCli(['run', '--json'], { cwd: dir, env });
    expect(second.code, second.stderr).toBe(0);
    const id2 = second.json().snapshot as string;
    const original = await fsp.readFile(path.join(snapshotDir(root, id2), 'manifest.json'));
    try {
      const edited = await readManifest(root, id2);
      edited.artifacts[0]!.meta = { ...edited.artifacts[0]!.meta, paths: ['/somewhere/else'] };
      await writeManifest(root, edited);
      let verify = await runCli(['verify', id2, '--json'], { cwd: dir, env });
      expect(verify.code).toBe(1);
      expect(verify.json().snapshots[0].error).toMatch(/the manifest cannot be trusted: its HMAC does not match/);

      // The older snapshot's manifest, relabelled with the newer id: its MAC covers the id.
      const swapped = { ...(await readManifest(root, id)), id: id2 };
      await writeManifest(root, swapped);
      verify = await runCli(['verify', id2, '--json'], { cwd: dir, env });
      expect(verify.json().snapshots[0].error).toMatch(/its HMAC does not match/);
      const restore = await runCli(['restore', id2, '--to', path.join(dir, 'swapped')], { cwd: dir, env });
      expect(restore.code).toBe(1);
      expect(logMessages(restore.stderr)).toMatch(/its HMAC does not match/);

      // Stripped of its authenticator.
      const { [AUTHENTICATION_FIELD]: _, ...stripped } = JSON.parse(original.toString()) as Record<string, unknown>;
      await writeManifest(root, stripped as Manifest);
      const test = await runCli(['restore-test', id2, '--json'], { cwd: dir, env });
      expect(test.code).toBe(1);
      expect(logMessages(test.stderr)).toMatch(/it is not authenticated, but encryption with a passphrase is configured/);
    } finally {
      await fsp.writeFile(path.join(snapshotDir(root, id2), 'manifest.json'), original);
    }
    const verify = await runCli(['verify', '--all'], { cwd: dir, env });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});

describe('recipients (public keys)', () => {
  let restoreKey: TestKey;
  let signer: TestKey;
  let dir: string;
  let id: string;

  beforeAll(async () => {
    restoreKey = makeKey('Restore', 'restore key passphrase');
    signer = makeKey('Backup Host', 'signing key passphrase');
    dir = path.join(work, 'recipients');
    await fsp.mkdir(dir);
    writeKey(dir, 'restore.pub.asc', restoreKey.publicKey);
    writeKey(dir, 'signer.pub.asc', signer.publicKey);
    // The backup host: public key to encrypt to, and the key that signs manifests. No private key.
    await writeRc(
      dir,
      `backupRoot: ./backups\nhost: enc\nencryption:\n  use: gpg\n  recipients: [./restore.pub.asc]\n  signingKey: "\${SIGNING_KEY}"\n  signingKeyPassphrase: "\${SIGNING_KEY_PASSPHRASE}"\nsources:\n  configs: { use: files, paths: [${src}] }\n`,
    );
    // The restore side: the private key, and the signer's public key to check manifests.
    await writeRc(
      dir,
      `backupRoot: ./backups\nhost: enc\nencryption:\n  use: gpg\n  privateKey: "\${RESTORE_KEY}"\n  privateKeyPassphrase: "\${RESTORE_KEY_PASSPHRASE}"\n  signerPublicKey: ./signer.pub.asc\nsources:\n  configs: { use: files, paths: [${src}] }\n`,
      'restore.yml',
    );
    const run = await runCli(['run', '--json'], { cwd: dir, env: { SIGNING_KEY: signer.secretKey, SIGNING_KEY_PASSPHRASE: signer.passphrase! } });
    expect(run.code, run.stderr).toBe(0);
    id = run.json().snapshot;
  });

  const restoreEnv = () => ({ RESTORE_KEY: restoreKey.secretKey, RESTORE_KEY_PASSPHRASE: restoreKey.passphrase! });

  it('records the recipients and signs the manifest', async () => {
    const manifest = JSON.parse(await fsp.readFile(path.join(snapshotDir(path.join(dir, 'backups'), id), 'manifest.json'), 'utf8'));
    expect(manifest.artifacts[0].encryption).toEqual({ method: 'gpg', mode: 'recipients', recipients: [restoreKey.fingerprint] });
    expect(manifest.authentication).toMatchObject({ scheme: 'openpgp-signature', signer: signer.fingerprint });
  });

  it('the backup host cannot read its own backups (it verifies their size and sha256)', async () => {
    const hostEnv = { SIGNING_KEY: signer.secretKey, SIGNING_KEY_PASSPHRASE: signer.passphrase! };
    const verify = await runCli(['verify', id, '--json'], { cwd: dir, env: hostEnv });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.json().snapshots[0].artifacts[0].checks).toEqual([
      { name: 'sha256', ok: true },
      { name: 'decode', ok: true, detail: expect.stringMatching(/not decoded on this host: it is encrypted to public keys/) },
    ]);
    const result = await runCli(['restore', id, '--to', path.join(dir, 'host-restore')], { cwd: dir, env: hostEnv });
    expect(result.code, 'a missing private key is a config error').toBe(2);
    expect(logMessages(result.stderr)).toMatch(/is encrypted to public keys \(.+\): set encryption\.privateKey \(or privateKeyFile\) to restore it/);
  });

  it('restores with the private key (tool and stock gpg), and refuses an edited manifest', async () => {
    const to = path.join(dir, 'restored');
    const result = await runCli(['--config', 'restore.yml', 'restore', id, '--to', to], { cwd: dir, env: restoreEnv() });
    expect(result.code, result.stderr).toBe(0);
    expect(await describeTree(path.join(to, 'configs', src))).toEqual(await describeTree(src));

    const home = await fsp.mkdtemp(path.join(work, 'gnupg-'));
    const keyFile = writeKey(dir, 'restore.sec.asc', restoreKey.secretKey);
    const stock = path.join(dir, 'stock');
    await fsp.mkdir(stock);
    const r = spawnSync(
      'sh',
      ['-c', `gpg --batch --quiet --homedir "$H" --import "$K" && gpg --batch --quiet --homedir "$H" --pinentry-mode loopback --passphrase "$P" --decrypt "$F" | zstd -d | tar -x -C "$T"`],
      { env: { PATH: process.env.PATH, H: home, K: keyFile, P: restoreKey.passphrase!, F: path.join(snapshotDir(path.join(dir, 'backups'), id), 'configs.tar.zst.gpg'), T: stock }, encoding: 'utf8' },
    );
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
    expect(r.status, r.stderr).toBe(0);
    expect(await describeTree(path.join(stock, src.slice(1)))).toEqual(await describeTree(src));

    const root = path.join(dir, 'backups');
    const edited = await readManifest(root, id);
    edited.host = 'somewhere-else';
    await writeManifest(root, edited);
    const verify = await runCli(['--config', 'restore.yml', 'verify', id, '--json'], { cwd: dir, env: restoreEnv() });
    expect(verify.code).toBe(1);
    expect(verify.json().snapshots[0].error).toMatch(/its signature does not check: bad signature/);
  });
});

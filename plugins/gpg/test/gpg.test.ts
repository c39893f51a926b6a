import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '@sutazai/backup-core';
import { decryptStream, encryptStream, Keyring } from '../src/gpg.js';
import { authenticateManifest, checkManifestAuthentication, macSalt, manifestMac, type Authenticator } from '../src/manifest-auth.js';
import { makeKey, stockGpg, writeKey, type TestKey } from './keys.js';

async function collect(stream: NodeJS.ReadableStream & Readable, input?: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await pipeline(Readable.from(input ? [input] : []), stream as unknown as NodeJS.ReadWriteStream, sink);
  return Buffer.concat(chunks);
}

describe('exports', () => {
  it("keeps ChildProcessStream and runChild: core's ProgramStream and runProgram under the names this package exported", async () => {
    const gpg = await import('../src/index.js');
    const core = await import('@sutazai/backup-core');
    expect(gpg.ChildProcessStream).toBe(core.ProgramStream);
    expect(gpg.runChild).toBe(core.runProgram);
  });
});

describe('gpg streams', () => {
  const keyring = new Keyring();
  let home: string;
  let dir: string;
  let key: TestKey;
  let other: TestKey;
  const passphrase = Buffer.from('a long test passphrase');
  const data = randomBytes(2 * 1024 * 1024);

  beforeAll(async () => {
    home = await keyring.home();
    dir = mkdtempSync(path.join(os.tmpdir(), 'gpg-test-'));
    key = makeKey('Restore Key', 'key-passphrase');
    other = makeKey('Other Key');
  });
  afterAll(async () => {
    await keyring.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('recipients: the backup side needs only the public key; the private key decrypts; stock gpg too', async () => {
    const recipientFile = writeKey(dir, 'recipient.asc', key.publicKey);
    const encrypted = await collect(encryptStream(keyring, home, [recipientFile], 'x'), data);
    expect(encrypted.subarray(0, 100).includes(data.subarray(0, 32))).toBe(false);
    await expect(collect(decryptStream(keyring, home, undefined, 'art'), encrypted)).rejects.toThrow(/private key is not configured/);
    await keyring.import(Buffer.from(key.secretKey));
    await expect(collect(decryptStream(keyring, home, Buffer.from('nope'), 'art'), encrypted)).rejects.toThrow(
      /art: cannot decrypt: wrong passphrase for the private key \(encryption\.privateKeyPassphrase\)/,
    );
    expect((await collect(decryptStream(keyring, home, Buffer.from(key.passphrase!), 'art'), encrypted)).equals(data)).toBe(true);
    const stock = stockGpg(['--passphrase', key.passphrase!, '--decrypt'], encrypted, [key.secretKey]);
    expect(stock.stdout.equals(data)).toBe(true);

    // A flipped bit or a cut makes the stream error, never end.
    const flipped = Buffer.from(encrypted);
    flipped[flipped.length - 100]! ^= 0x01;
    await expect(collect(decryptStream(keyring, home, Buffer.from(key.passphrase!), 'art'), flipped)).rejects.toThrow(/art: the encrypted data failed gpg's integrity check/);
    const cut = encrypted.subarray(0, encrypted.length - 4096);
    await expect(collect(decryptStream(keyring, home, Buffer.from(key.passphrase!), 'art'), cut)).rejects.toThrow(/art: .*(integrity|gpg --decrypt failed)/);
  });

  it('refuses data without integrity protection (no MDC), even when gpg decrypts it', async () => {
    const plain = stockGpg(['--passphrase', passphrase.toString(), '--symmetric', '--rfc2440', '--cipher-algo', 'AES256', '--output', '-'], data);
    expect(plain.status).toBe(0);
    await expect(collect(decryptStream(keyring, home, passphrase, 'art'), plain.stdout)).rejects.toThrow(/art: .*integrity/);
  });

  describe('manifest authentication', () => {
    const manifest = (): Manifest => ({
      formatVersion: 1,
      id: '20261126T020000Z-daily-3f9a',
      profile: 'daily',
      host: 'h',
      startedAt: '2026-11-26T02:00:00.000Z',
      finishedAt: '2026-11-26T02:01:00.000Z',
      tool: { name: 'sutazai-backup', version: '0.1.0' },
      artifacts: [
        { source: 'db', plugin: 'sqlite', file: 'db.sqlite.zst.gpg', type: 'file', bytes: 10, sha256: 'a'.repeat(64), rawBytes: 20, compression: 'zstd', encryption: { method: 'gpg' }, meta: {} },
      ],
    });
    const withAuth = async (m: Manifest, auth: Parameters<typeof authenticateManifest>[1]) => {
      const a = await authenticateManifest(m, auth);
      return { ...m, ...(a ? { authentication: a } : {}) } as Manifest;
    };
    const symmetric = (p: string): Authenticator => ({ passphrase: Buffer.from(p), signer: undefined, canSign: false, signingKeyPassphrase: undefined, keyring, ready: async () => {} });

    it('HMAC: accepts the manifest as written, refuses any edit, another id, or another passphrase', async () => {
      const m = await withAuth(manifest(), symmetric('a long test passphrase'));
      await expect(checkManifestAuthentication(m, symmetric('a long test passphrase'), 'w')).resolves.toMatch(/authenticated/);
      const edited = structuredClone(m);
      edited.artifacts[0]!.sha256 = 'b'.repeat(64);
      await expect(checkManifestAuthentication(edited, symmetric('a long test passphrase'), 'w')).rejects.toThrow(/HMAC does not match/);
      await expect(checkManifestAuthentication({ ...m, id: '20261127T020000Z-daily-3f9a' }, symmetric('a long test passphrase'), 'w')).rejects.toThrow(/HMAC does not match/);
      await expect(checkManifestAuthentication(m, symmetric('another passphrase'), 'w')).rejects.toThrow(/not the passphrase it was written with/);
      const { authentication: _, ...stripped } = m as Manifest & { authentication: unknown };
      await expect(checkManifestAuthentication(stripped as Manifest, symmetric('a long test passphrase'), 'w')).rejects.toThrow(/not authenticated, but encryption with a passphrase is configured/);
    });

    it('HMAC: manifests written with the earlier key derivation (scrypt) still check; an unknown one is refused', async () => {
      const plain = manifest();
      const salt = macSalt(plain.host);
      const auth = { method: 'gpg', scheme: 'hmac-sha256', kdf: 'scrypt', salt: salt.toString('base64'), mac: await manifestMac(plain, Buffer.from('a long test passphrase'), salt, 'scrypt') };
      const old = { ...plain, authentication: auth } as Manifest;
      await expect(checkManifestAuthentication(old, symmetric('a long test passphrase'), 'w')).resolves.toMatch(/authenticated/);
      await expect(checkManifestAuthentication(old, symmetric('another passphrase'), 'w')).rejects.toThrow(/HMAC does not match/);
      // The same MAC under the other derivation's name does not check: the kdf is part of what is verified.
      const relabelled = { ...plain, authentication: { ...auth, kdf: 's2k-sha256' } } as Manifest;
      await expect(checkManifestAuthentication(relabelled, symmetric('a long test passphrase'), 'w')).rejects.toThrow(/HMAC does not match/);
      const unknown = { ...plain, authentication: { ...auth, kdf: 'md5' } } as Manifest;
      await expect(checkManifestAuthentication(unknown, symmetric('a long test passphrase'), 'w')).rejects.toThrow(/key derivation md5 is unknown/);
    });

    it('signature: accepts the signer, refuses edits and other signers', async () => {
      const signer = makeKey('Signer', 'sign-pass');
      const signKeyring = new Keyring();
      const auth: Authenticator = {
        passphrase: undefined,
        signer: signer.fingerprint,
        canSign: true,
        signingKeyPassphrase: Buffer.from('sign-pass'),
        keyring: signKeyring,
        ready: () => signKeyring.import(Buffer.from(signer.secretKey)),
      };
      try {
        const m = await withAuth(manifest(), auth);
        expect((m as Manifest & { authentication: { scheme: string } }).authentication.scheme).toBe('openpgp-signature');
        await expect(checkManifestAuthentication(m, auth, 'w')).resolves.toMatch(/signed by/);
        const edited = structuredClone(m);
        edited.artifacts[0]!.rawBytes = 21;
        await expect(checkManifestAuthentication(edited, auth, 'w')).rejects.toThrow(/signature does not check: bad signature/);
        const forger = new Keyring();
        try {
          const forged = await withAuth(manifest(), { ...auth, signer: other.fingerprint, signingKeyPassphrase: undefined, keyring: forger, ready: () => forger.import(Buffer.from(other.secretKey)) });
          await signKeyring.import(Buffer.from(other.publicKey));
          await expect(checkManifestAuthentication(forged, auth, 'w')).rejects.toThrow(/signed by another key/);
        } finally {
          await forger.dispose();
        }
      } finally {
        await signKeyring.dispose();
      }
    });
  });
});

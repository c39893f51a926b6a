/** Real OpenPGP keys for tests, made by gpg in a throwaway home. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestKey {
  fingerprint: string;
  publicKey: string;
  secretKey: string;
  passphrase: string | undefined;
}

function gpg(home: string, args: string[], input?: string): string {
  const r = spawnSync('gpg', ['--homedir', home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', ...args], {
    input,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, LC_ALL: 'C' },
  });
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** An ed25519 key that signs, with a cv25519 subkey that encrypts; protected by `passphrase` when given. */
export function makeKey(name: string, passphrase?: string): TestKey {
  const home = mkdtempSync(path.join(os.tmpdir(), 'sutazai-testkey-'));
  try {
    const pass = ['--passphrase', passphrase ?? ''];
    gpg(home, [...pass, '--quick-gen-key', `${name} <${name.toLowerCase().replace(/\W+/g, '-')}@example.com>`, 'ed25519', 'sign', 'never']);
    const fingerprint = gpg(home, ['--with-colons', '--list-keys']).split('\n').find((l) => l.startsWith('fpr'))!.split(':')[9]!;
    gpg(home, [...pass, '--quick-add-key', fingerprint, 'cv25519', 'encr', 'never']);
    return {
      fingerprint,
      publicKey: gpg(home, ['--armor', '--export', fingerprint]),
      secretKey: gpg(home, [...pass, '--armor', '--export-secret-keys', fingerprint]),
      passphrase,
    };
  } finally {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore' });
    rmSync(home, { recursive: true, force: true });
  }
}

/** Writes a key into a 0600 file. */
export function writeKey(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** Runs stock gpg in a throwaway home (as a user restoring by hand would), returning stdout as bytes. */
export function stockGpg(args: string[], input: Buffer | string, imports: string[] = []): { status: number | null; stdout: Buffer; stderr: string } {
  const home = mkdtempSync(path.join(os.tmpdir(), 'sutazai-stockgpg-'));
  try {
    for (const key of imports) gpg(home, ['--import'], key);
    const r = spawnSync('gpg', ['--homedir', home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', ...args], {
      input,
      env: { PATH: process.env.PATH, LC_ALL: 'C' },
      maxBuffer: 1024 * 1024 * 1024,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
  } finally {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore' });
    rmSync(home, { recursive: true, force: true });
  }
}

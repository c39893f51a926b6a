import { existsSync, promises as fsp, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BackupError, ProgramStream, runChildSync, runProgram, type ProgramOutcome as ChildOutcome, type ProgramSpec } from '@sutazai/backup-core';

/** The cipher of symmetric encryption (public-key encryption follows the recipients' preferences). */
export const SYMMETRIC_CIPHER = 'AES256';

const PASSPHRASE_FD = 3;
const STATUS_FD = 4;

/** A key as gpg describes it. */
export interface KeyInfo {
  /** The primary key's fingerprint. */
  fingerprint: string;
  secret: boolean;
  canEncrypt: boolean;
  canSign: boolean;
  userIds: string[];
}

/**
 * A private GNUPGHOME (0700, in the system's temporary folder) that lives as long as the plugin:
 * the user's own keyrings are never read or changed. gpg starts an agent in it when a secret
 * key is used; `dispose` stops the agent and removes the folder (also on process exit).
 */
export class Keyring {
  readonly gpg: string;
  #home: Promise<string> | undefined;
  #homePath: string | undefined;
  readonly #onExit = () => this.disposeSync();

  constructor(gpg = 'gpg') {
    this.gpg = gpg;
  }

  home(): Promise<string> {
    this.#home ??= (async () => {
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-gpg-'));
      await fsp.chmod(dir, 0o700);
      this.#homePath = dir;
      process.once('exit', this.#onExit);
      return dir;
    })();
    return this.#home;
  }

  /** What gpg gets beyond the minimal environment: its private home, and the C locale for parseable messages. */
  env(home: string): Record<string, string> {
    return { LC_ALL: 'C', LANG: 'C', GNUPGHOME: home, HOME: home };
  }

  async args(...rest: string[]): Promise<string[]> {
    return this.argsIn(await this.home(), ...rest);
  }

  /** gpg's arguments for a home made by `home()`: batch mode, no prompts, status lines on fd 4. */
  argsIn(home: string, ...rest: string[]): string[] {
    return ['--homedir', home, '--batch', '--no-tty', '--no-greeting', '--no-permission-warning', '--pinentry-mode', 'loopback', '--status-fd', String(STATUS_FD), ...rest];
  }

  /** Describes the keys in armored or binary key data without importing them. */
  async inspect(keyData: Buffer): Promise<KeyInfo[]> {
    const home = await this.home();
    const out = await runProgram({
      command: this.gpg,
      args: await this.args('--with-colons', '--import-options', 'show-only', '--import'),
      env: this.env(home),
      statusFd: STATUS_FD,
      input: keyData,
      check: (o) => (o.code === 0 ? undefined : new Error(lastLine(o.stderr) || `gpg exited with ${o.code}`)),
    });
    return parseColons(out.toString('utf8'));
  }

  /** Imports keys (a secret key brings its public key too). */
  async import(keyData: Buffer): Promise<void> {
    const home = await this.home();
    await runProgram({
      command: this.gpg,
      args: await this.args('--import'),
      env: this.env(home),
      statusFd: STATUS_FD,
      input: keyData,
      check: (o) => (o.code === 0 && /IMPORT_OK|IMPORT_RES/.test(o.status) ? undefined : new Error(lastLine(o.stderr) || `gpg --import exited with ${o.code}`)),
    });
  }

  async dispose(): Promise<void> {
    const home = this.#homePath;
    if (!home) return;
    this.#home = undefined;
    this.#homePath = undefined;
    process.removeListener('exit', this.#onExit);
    this.#stopAgent(home);
    await fsp.rm(home, { recursive: true, force: true });
  }

  disposeSync(): void {
    const home = this.#homePath;
    if (!home) return;
    this.#homePath = undefined;
    this.#stopAgent(home);
    rmSync(home, { recursive: true, force: true });
  }

  /** Stops the gpg-agent of `home`, if one was started (its socket is there). */
  #stopAgent(home: string): void {
    if (!existsSync(path.join(home, 'S.gpg-agent'))) return;
    runChildSync('gpgconf', ['--homedir', home, '--kill', 'all'], { env: this.env(home) });
  }
}

/** Parses `gpg --with-colons` key listings. */
export function parseColons(text: string): KeyInfo[] {
  const keys: KeyInfo[] = [];
  let current: KeyInfo | undefined;
  let wantFpr = false;
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === 'pub' || f[0] === 'sec') {
      const caps = f[11] ?? '';
      current = { fingerprint: '', secret: f[0] === 'sec', canEncrypt: caps.includes('E'), canSign: caps.includes('S'), userIds: [] };
      keys.push(current);
      wantFpr = true;
    } else if (f[0] === 'fpr' && current && wantFpr) {
      current.fingerprint = f[9] ?? '';
      wantFpr = false;
    } else if ((f[0] === 'sub' || f[0] === 'ssb') && current) {
      wantFpr = false;
    } else if (f[0] === 'uid' && current) {
      current.userIds.push(f[9] ?? '');
    }
  }
  return keys.filter((k) => k.fingerprint);
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => l.trim())
      .at(-1)
      ?.trim() ?? ''
  );
}

function statusHas(status: string, keyword: string): boolean {
  return status.split('\n').some((l) => l.startsWith(`[GNUPG:] ${keyword}`));
}

/**
 * An OpenPGP encryption stage to public keys: plaintext in, a `gpg --decrypt`-able,
 * integrity-protected (MDC) message out. `recipientFiles`: key files gpg encrypts to without a
 * keyring (`--recipient-file`). (Passphrase encryption runs in-process: openpgp.ts.)
 */
export function encryptStream(keyring: Keyring, home: string, recipientFiles: string[], label: string): ProgramStream {
  return new ProgramStream(encryptProgram(keyring, home, recipientFiles, label));
}

/** The gpg run of `encryptStream`: stdin to stdout. */
export function encryptProgram(keyring: Keyring, home: string, recipientFiles: string[], label: string): ProgramSpec {
  return {
    command: keyring.gpg,
    // Compression already happened (zstd); gpg's own would only cost time.
    args: keyring.argsIn(home, '--quiet', '--compress-algo', 'none', '--encrypt', ...recipientFiles.flatMap((f) => ['--recipient-file', f]), '--output', '-'),
    env: keyring.env(home),
    statusFd: STATUS_FD,
    check: (o) => encryptionOutcome(o, label),
  };
}

export function encryptionOutcome(o: ChildOutcome, label: string): Error | undefined {
  if (o.code === 0 && statusHas(o.status, 'END_ENCRYPTION')) return undefined;
  return new BackupError('E_ARCHIVE', `${label}: gpg encryption failed (exit ${o.code ?? o.signal}): ${lastLine(o.stderr) || 'no message'}`);
}

/** The decryption stage of data encrypted to public keys; `passphrase`: the private key's, if it has one. */
export function decryptStream(keyring: Keyring, home: string, passphrase: Buffer | undefined, label: string): ProgramStream {
  return new ProgramStream(decryptProgram(keyring, home, passphrase, label));
}

/** The gpg run of `decryptStream`: stdin (a pipe, or the artifact file itself) to stdout. */
export function decryptProgram(keyring: Keyring, home: string, passphrase: Buffer | undefined, label: string): ProgramSpec {
  return {
    command: keyring.gpg,
    // Not --quiet: the reason of a failure (Bad passphrase) is only said on stderr.
    args: keyring.argsIn(
      home,
      ...(passphrase ? ['--passphrase-fd', String(PASSPHRASE_FD)] : []),
      '--decrypt',
      '--output',
      '-',
    ),
    env: keyring.env(home),
    ...(passphrase ? { inputs: { [PASSPHRASE_FD]: Buffer.concat([passphrase, Buffer.from('\n')]) } } : {}),
    statusFd: STATUS_FD,
    check: (o) => decryptionOutcome(o, label),
  };
}

/**
 * Whether gpg's output of a decryption can be trusted: exit 0, DECRYPTION_OKAY, and an integrity
 * check that passed (GOODMDC, or AEAD). Anything else is an error that says what went wrong.
 */
export function decryptionOutcome(o: ChildOutcome, label: string): Error | undefined {
  const info = o.status.split('\n').find((l) => l.startsWith('[GNUPG:] DECRYPTION_INFO'));
  const aead = Number(info?.split(' ')[4] ?? 0) > 0;
  const integrityOk = statusHas(o.status, 'GOODMDC') || aead;
  const failed = statusHas(o.status, 'DECRYPTION_FAILED') || statusHas(o.status, 'BADMDC');
  const unprotected = /not integrity protected|decryption forced to fail/i.test(o.stderr);
  if (o.code === 0 && statusHas(o.status, 'DECRYPTION_OKAY') && integrityOk && !failed && !unprotected) return undefined;
  const gpgSays = lastLine(o.stderr);
  // gpg's error codes: the low 16 bits; 11 is GPG_ERR_BAD_PASSPHRASE.
  const badPassphrase =
    /BAD_PASSPHRASE/.test(o.status) ||
    [...o.status.matchAll(/\[GNUPG:\] ERROR \S+ (\d+)/g)].some((m) => (Number(m[1]) & 0xffff) === 11) ||
    /bad session key|bad passphrase/i.test(o.stderr);
  if (badPassphrase) {
    return new BackupError('E_CONFIG', `${label}: cannot decrypt: wrong passphrase for the private key (encryption.privateKeyPassphrase) (gpg: ${gpgSays})`);
  }
  if (statusHas(o.status, 'NO_SECKEY') || /no secret key/i.test(o.stderr)) {
    return new BackupError('E_CONFIG', `${label}: cannot decrypt: it is encrypted to a key whose private key is not configured (set encryption.privateKey) (gpg: ${gpgSays})`);
  }
  if (unprotected || statusHas(o.status, 'BADMDC') || (statusHas(o.status, 'DECRYPTION_OKAY') === false && statusHas(o.status, 'BEGIN_DECRYPTION'))) {
    return new BackupError('E_INTEGRITY', `${label}: the encrypted data failed gpg's integrity check: it was altered or truncated (gpg: ${gpgSays || `exit ${o.code}`})`);
  }
  if (o.code === 0 && !integrityOk) {
    return new BackupError('E_INTEGRITY', `${label}: the encrypted data is not integrity protected: refused`);
  }
  return new BackupError('E_INTEGRITY', `${label}: gpg --decrypt failed (exit ${o.code ?? o.signal}): ${gpgSays || 'no message'}`);
}

/** An armored detached signature of `data` by the secret key `signer` (already imported). */
export async function signDetached(keyring: Keyring, signer: string, passphrase: Buffer | undefined, data: Buffer): Promise<string> {
  const home = await keyring.home();
  const out = await runProgram({
    command: keyring.gpg,
    args: await keyring.args(
      '--quiet',
      ...(passphrase ? ['--passphrase-fd', String(PASSPHRASE_FD)] : []),
      '--local-user',
      `${signer}!`,
      '--detach-sign',
      '--armor',
      '--output',
      '-',
    ),
    env: keyring.env(home),
    ...(passphrase ? { inputs: { [PASSPHRASE_FD]: Buffer.concat([passphrase, Buffer.from('\n')]) } } : {}),
    statusFd: STATUS_FD,
    input: data,
    check: (o) =>
      o.code === 0 && statusHas(o.status, 'SIG_CREATED')
        ? undefined
        : new BackupError('E_CONFIG', `signing the manifest with ${signer} failed: ${/BAD_PASSPHRASE/.test(o.status) ? 'wrong encryption.signingKeyPassphrase' : lastLine(o.stderr)}`),
  });
  return out.toString('utf8');
}

/** Whether `signature` is a good signature of `data` made by the key `signer` (its public key imported). */
export async function verifyDetached(keyring: Keyring, signer: string, signature: string, data: Buffer): Promise<{ ok: boolean; detail: string }> {
  const home = await keyring.home();
  const sigFile = path.join(await fsp.mkdtemp(path.join(home, 'sig-')), 'manifest.sig');
  await fsp.writeFile(sigFile, signature, { mode: 0o600 });
  try {
    let outcome: ChildOutcome | undefined;
    await runProgram({
      command: keyring.gpg,
      args: await keyring.args('--trust-model', 'always', '--verify', sigFile, '-'),
      env: keyring.env(home),
      statusFd: STATUS_FD,
      input: data,
      check: (o) => {
        outcome = o;
        return undefined;
      },
    });
    const valid = outcome!.status
      .split('\n')
      .filter((l) => l.startsWith('[GNUPG:] VALIDSIG '))
      .map((l) => l.split(' '));
    const bySigner = valid.some((f) => f[2] === signer || f.at(-1) === signer);
    const bad = /\[GNUPG:\] (BADSIG|ERRSIG|EXPKEYSIG|REVKEYSIG)/.test(outcome!.status);
    if (outcome!.code === 0 && bySigner && !bad) return { ok: true, detail: `signed by ${signer}` };
    if (valid.length && !bySigner) return { ok: false, detail: `signed by another key (${valid.map((f) => f.at(-1)).join(', ')}), not ${signer}` };
    return { ok: false, detail: `bad signature (gpg: ${lastLine(outcome!.stderr) || `exit ${outcome!.code}`})` };
  } finally {
    await fsp.rm(path.dirname(sigFile), { recursive: true, force: true });
  }
}

import { existsSync, promises as fsp } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { BackupError, chunkDecoderStream, chunkEncoderStream, definePlugin, expandHome, z, type PluginContext } from '@sutazai/backup-core';
import { authenticateManifest, AUTHENTICATION_FIELD, checkManifestAuthentication, prepareMacKey, type Authenticator } from './manifest-auth.js';
import { decryptProgram, decryptStream, encryptProgram, encryptStream, Keyring, SYMMETRIC_CIPHER, type KeyInfo } from './gpg.js';
import { OpenPgpDecryptor, OpenPgpEncryptor } from './openpgp.js';
import { addonNote } from './native.js';

/** Core's ProgramStream and runProgram (and their types), under the names this package exported before they moved there. */
export { ProgramStream as ChildProcessStream, runProgram as runChild, type ProgramOutcome as ChildOutcome, type ProgramSpec as ChildStreamOptions } from '@sutazai/backup-core';
export { decryptionOutcome, decryptProgram, encryptionOutcome, encryptProgram, Keyring, parseColons, SYMMETRIC_CIPHER } from './gpg.js';
export { deriveKey, OpenPgpDecryptor, OpenPgpEncryptor, s2kCount, S2K_COUNT_OCTET } from './openpgp.js';
export { authenticateManifest, AUTHENTICATION_FIELD, macSalt, manifestMac, SCRYPT_PARAMS, type MacKdf } from './manifest-auth.js';

const NAME = 'gpg';

/** The OpenPGP module, loadable on its own by a verifying thread (not from the TypeScript sources). */
const OPENPGP_MODULE = new URL('./openpgp.js', import.meta.url);
const OPENPGP_THREADABLE = OPENPGP_MODULE.protocol === 'file:' && existsSync(fileURLToPath(OPENPGP_MODULE));

const oneLine = (what: string) => (v: string) => !/[\r\n]/.test(v) || `${what} must be one line (gpg reads it up to the first newline)`;

export const gpgOptions = z
  .object({
    /** Symmetric encryption (and the key of the manifests' HMAC). Give it as ${VAR}. */
    passphrase: z
      .string()
      .min(8, 'a passphrase of at least 8 characters (a long random one: `openssl rand -base64 32`)')
      .refine((v) => oneLine('the passphrase')(v) === true, 'the passphrase must be one line')
      .optional(),
    /** Encrypt to these public keys instead: each a key file (relative to the rc file) or armored key text. */
    recipients: z.array(z.string().min(1)).min(1).optional(),
    /** Restore side of `recipients`: the armored private key (as ${VAR}), or `privateKeyFile`. */
    privateKey: z.string().min(1).optional(),
    privateKeyFile: z.string().min(1).optional(),
    privateKeyPassphrase: z.string().refine((v) => oneLine('privateKeyPassphrase')(v) === true, 'must be one line').optional(),
    /** With `recipients`: a secret key that signs each manifest (armored, as ${VAR}), or `signingKeyFile`. */
    signingKey: z.string().min(1).optional(),
    signingKeyFile: z.string().min(1).optional(),
    signingKeyPassphrase: z.string().refine((v) => oneLine('signingKeyPassphrase')(v) === true, 'must be one line').optional(),
    /** The signing key's public key (file or armored text), for hosts that check manifests without holding the signing key. */
    signerPublicKey: z.string().min(1).optional(),
    /** The gpg program. */
    gpgPath: z.string().min(1).default('gpg'),
  })
  .strict()
  .superRefine((o, ctx) => {
    const issue = (pathName: string, message: string) => ctx.addIssue({ code: 'custom', path: [pathName], message });
    if (o.passphrase && o.recipients) issue('recipients', 'use either passphrase (symmetric) or recipients (public keys), not both');
    if (!o.passphrase && !o.recipients && !o.privateKey && !o.privateKeyFile) {
      issue('passphrase', 'set passphrase: ${BACKUP_ENCRYPTION_PASSPHRASE}, or recipients: [key files] (and privateKey to restore)');
    }
    if (o.privateKey && o.privateKeyFile) issue('privateKeyFile', 'use either privateKey or privateKeyFile, not both');
    if (o.signingKey && o.signingKeyFile) issue('signingKeyFile', 'use either signingKey or signingKeyFile, not both');
    if (o.passphrase && (o.signingKey || o.signingKeyFile || o.signerPublicKey)) {
      issue('signingKey', 'not used with a passphrase: manifests are authenticated with an HMAC keyed from the passphrase');
    }
  });

export type GpgOptions = z.input<typeof gpgOptions>;
type Options = z.output<typeof gpgOptions>;

/** Key material from an option: armored text as it is, anything else a file path. */
async function keyData(value: string, key: string, ctx: PluginContext): Promise<Buffer> {
  if (/^\s*-----BEGIN PGP /.test(value)) return Buffer.from(value, 'utf8');
  const file = path.resolve(ctx.configDir, expandHome(value));
  try {
    return await fsp.readFile(file);
  } catch (err) {
    throw new BackupError('E_CONFIG', `${ctx.key}.${key}: cannot read the key file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

async function inspectOne(keyring: Keyring, data: Buffer, key: string, ctx: PluginContext): Promise<KeyInfo[]> {
  const keys = await keyring.inspect(data).catch((err: Error) => {
    throw new BackupError('E_CONFIG', `${ctx.key}.${key}: not an OpenPGP key (${err.message})`);
  });
  if (keys.length === 0) throw new BackupError('E_CONFIG', `${ctx.key}.${key}: holds no OpenPGP key`);
  return keys;
}

/** What this plugin instance prepared from its options. */
class GpgEncryption {
  readonly keyring: Keyring;
  readonly options: Options;
  readonly ctx: PluginContext;
  readonly passphrase: Buffer | undefined;
  recipientFiles: string[] = [];
  recipientFingerprints: string[] = [];
  signer: string | undefined;
  #signerData: Buffer | undefined;
  #privateData: Buffer | undefined;
  #privateReady: Promise<void> | undefined;
  #signerReady: Promise<void> | undefined;

  constructor(options: Options, ctx: PluginContext) {
    this.options = options;
    this.ctx = ctx;
    this.keyring = new Keyring(options.gpgPath);
    this.passphrase = options.passphrase ? Buffer.from(options.passphrase, 'utf8') : undefined;
  }

  get mode(): 'symmetric' | 'recipients' | undefined {
    return this.passphrase ? 'symmetric' : this.options.recipients ? 'recipients' : undefined;
  }

  /** Reads and checks every key named in the options, so that a bad one fails at start, naming its option. */
  async prepare(): Promise<void> {
    const { options, ctx } = this;
    for (const [i, value] of (options.recipients ?? []).entries()) {
      const home = await this.keyring.home();
      const key = `recipients[${i}]`;
      const data = await keyData(value, key, ctx);
      const keys = await inspectOne(this.keyring, data, key, ctx);
      for (const k of keys) {
        if (!k.canEncrypt) throw new BackupError('E_CONFIG', `${ctx.key}.${key}: key ${k.fingerprint} cannot encrypt (no encryption subkey)`);
      }
      const file = path.join(home, `recipient-${i}.key`);
      await fsp.writeFile(file, data, { mode: 0o600 });
      this.recipientFiles.push(file);
      this.recipientFingerprints.push(...keys.map((k) => k.fingerprint));
    }
    const privateSource = options.privateKey ?? options.privateKeyFile;
    if (privateSource) {
      const key = options.privateKey ? 'privateKey' : 'privateKeyFile';
      this.#privateData = await keyData(privateSource, key, ctx);
      ctx.secrets.add(this.#privateData.toString('utf8').trim());
      const keys = await inspectOne(this.keyring, this.#privateData, key, ctx);
      if (!keys.some((k) => k.secret)) throw new BackupError('E_CONFIG', `${ctx.key}.${key}: holds a public key; a private (secret) key is needed to restore`);
    }
    const signingSource = options.signingKey ?? options.signingKeyFile;
    const signerSource = signingSource ?? options.signerPublicKey;
    if (signerSource) {
      const key = options.signingKey ? 'signingKey' : options.signingKeyFile ? 'signingKeyFile' : 'signerPublicKey';
      this.#signerData = await keyData(signerSource, key, ctx);
      if (signingSource) ctx.secrets.add(this.#signerData.toString('utf8').trim());
      const keys = await inspectOne(this.keyring, this.#signerData, key, ctx);
      if (keys.length !== 1) throw new BackupError('E_CONFIG', `${ctx.key}.${key}: holds ${keys.length} keys; give exactly one`);
      if (signingSource && !keys[0]!.secret) throw new BackupError('E_CONFIG', `${ctx.key}.${key}: holds a public key; signing needs the private key`);
      if (!keys[0]!.canSign) throw new BackupError('E_CONFIG', `${ctx.key}.${key}: key ${keys[0]!.fingerprint} cannot sign`);
      this.signer = keys[0]!.fingerprint;
    }
    if (this.mode === 'recipients' && !this.signer) {
      ctx.logger.warn(
        `${ctx.key}: manifests are not authenticated (recipients without signingKey): a manifest edited in the repository would go unnoticed; set signingKey to sign them`,
      );
    }
  }

  /** Imports the private key once, when something must be decrypted. */
  privateKeyReady(): Promise<void> {
    this.#privateReady ??= this.#privateData ? this.keyring.import(this.#privateData) : Promise.resolve();
    return this.#privateReady;
  }

  /** Imports the signing key (or its public key) once, when a manifest is signed or checked. */
  signerReady(): Promise<void> {
    this.#signerReady ??= this.#signerData ? this.keyring.import(this.#signerData) : Promise.resolve();
    return this.#signerReady;
  }

  get canSign(): boolean {
    return Boolean(this.options.signingKey ?? this.options.signingKeyFile);
  }

  authenticator(): Authenticator {
    return {
      passphrase: this.passphrase,
      signer: this.signer,
      canSign: this.canSign,
      signingKeyPassphrase: this.options.signingKeyPassphrase ? Buffer.from(this.options.signingKeyPassphrase, 'utf8') : undefined,
      keyring: this.keyring,
      ready: () => this.signerReady(),
    };
  }
}

/**
 * `encryption: { use: gpg }` — OpenPGP encryption of every artifact with the `gpg` program,
 * streaming, after compression: symmetric with a passphrase, or to recipients' public keys.
 * Artifacts decrypt with stock `gpg --decrypt`. Manifests are authenticated: an HMAC keyed from
 * the passphrase, or (with recipients) a signature by `signingKey`.
 */
export default definePlugin({
  name: NAME,
  kind: 'encryption',
  options: gpgOptions,
  async apply(hooks, ctx, options) {
    const gpg = new GpgEncryption(options, ctx);
    await gpg.prepare();

    // The manifest's MAC key is slow to derive on purpose: started when the run starts, it is
    // ready at the commit instead of holding it up.
    hooks.beforeRun.tapPromise(ctx.key, async (run) => {
      if (gpg.mode === 'symmetric') run.logger.debug(`${ctx.key}: ${addonNote()}`);
      if (gpg.mode === 'symmetric' && gpg.passphrase) prepareMacKey(gpg.passphrase, run.host);
    });

    hooks.archive.tapPromise(ctx.key, async (archive) => {
      const label = `${archive.source}: ${archive.spec.name}`;
      if (gpg.mode === 'symmetric') {
        // In-process OpenPGP (openpgp.ts): the same message `gpg --symmetric` writes, without the
        // pipes to and from a gpg process.
        const passphrase = gpg.passphrase!;
        archive.addTransform({
          name: NAME,
          extension: '.gpg',
          create: () => chunkEncoderStream(new OpenPgpEncryptor(passphrase)),
          chunked: () => new OpenPgpEncryptor(passphrase),
          // The run verifies the artifact while it is written, decrypting in that thread.
          ...(OPENPGP_THREADABLE ? { threadDecoder: () => ({ module: OPENPGP_MODULE.href, data: { passphrase: new Uint8Array(passphrase), label } }) } : {}),
          info: { method: NAME, mode: 'symmetric', cipher: SYMMETRIC_CIPHER },
        });
      } else if (gpg.mode === 'recipients') {
        const home = await gpg.keyring.home();
        const recipientFiles = gpg.recipientFiles;
        archive.addTransform({
          name: NAME,
          extension: '.gpg',
          create: () => encryptStream(gpg.keyring, home, recipientFiles, label),
          program: () => encryptProgram(gpg.keyring, home, recipientFiles, label),
          info: { method: NAME, mode: 'recipients', recipients: [...gpg.recipientFingerprints] },
        });
      } else {
        throw new BackupError('E_CONFIG', `${ctx.key}: this configuration can only restore (privateKey); set recipients (or passphrase) to back up`);
      }
    });

    hooks.decode.tapPromise(ctx.key, async (decode) => {
      const info = decode.artifact.encryption;
      if (info?.method !== NAME) return;
      const label = `${decode.manifest.id}/${decode.artifact.file}`;
      if (info.mode === 'recipients') {
        const home = await gpg.keyring.home();
        if (!options.privateKey && !options.privateKeyFile) {
          const to = Array.isArray(info.recipients) ? ` (${(info.recipients as string[]).join(', ')})` : '';
          decode.cannotDecode(`it is encrypted to public keys${to}: set ${ctx.key}.privateKey (or privateKeyFile) to restore it`);
          return;
        }
        await gpg.privateKeyReady();
        const keyPassphrase = options.privateKeyPassphrase ? Buffer.from(options.privateKeyPassphrase, 'utf8') : undefined;
        decode.addDecoder(NAME, () => decryptStream(gpg.keyring, home, keyPassphrase, label), {
          program: () => decryptProgram(gpg.keyring, home, keyPassphrase, label),
        });
        return;
      }
      if (!gpg.passphrase) throw new BackupError('E_CONFIG', `${label} is encrypted with a passphrase: set ${ctx.key}.passphrase to restore it`);
      const passphrase = gpg.passphrase;
      decode.addDecoder(NAME, () => chunkDecoderStream(new OpenPgpDecryptor(passphrase, label)), {
        chunk: () => new OpenPgpDecryptor(passphrase, label),
      });
    });

    hooks.commit.tapPromise(ctx.key, async ({ manifest }) => {
      const authentication = await authenticateManifest(manifest, gpg.authenticator());
      if (authentication) (manifest as Record<string, unknown>)[AUTHENTICATION_FIELD] = authentication;
    });

    hooks.checkManifest.tapPromise(ctx.key, async ({ manifest, repository, logger }) => {
      const where = `${repository.name}: snapshot ${manifest.id}`;
      const detail = await checkManifestAuthentication(manifest, gpg.authenticator(), where);
      logger.debug(`${where}: manifest ${detail}`);
    });

    hooks.close.tapPromise(ctx.key, () => gpg.keyring.dispose());
  },
});

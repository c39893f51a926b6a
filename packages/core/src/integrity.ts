import { createHash, createHmac, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { BackupError } from './errors.js';
import { manifestAuthenticatedBytes, type Manifest } from './manifest.js';
import type { PluginEntry } from './config.js';
import type { Plugin } from './plugin.js';

/**
 * `integrity: { key: ${VAR} }` — authenticated manifests without encryption. At commit the
 * manifest gets an HMAC-SHA256 over its canonical JSON (the id included); `verify`, `restore`
 * and `restore-test` refuse a manifest whose HMAC does not check, or that has none. The manifest
 * lists every artifact's size and sha256, so this authenticates the whole snapshot.
 */
export const INTEGRITY_PLUGIN = 'integrity';

/** The manifest's top-level field that holds the authenticator (the gpg plugin's too). */
export const AUTHENTICATION_FIELD = 'authentication';

/**
 * Where authenticators tap `commit`: after every other plugin, since the MAC must cover every
 * field they add.
 */
export const COMMIT_STAGE_AUTHENTICATE = 1000;

/**
 * The HMAC key comes from `integrity.key` through scrypt, whether the key is random or a
 * passphrase: anyone who can read the repository can try guesses against a manifest's MAC
 * offline, and a passphrase must make each guess cost (here ~32 MiB and ~0.1 s); a random key
 * loses nothing by it. Derived once per command and host (the salt is per host, not per
 * manifest). The parameters are fixed, never read from a manifest: a forged one can neither make
 * the check cheap nor make it exhaust memory.
 */
export const INTEGRITY_SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const KDF = 'scrypt';
const SALT_CONTEXT = 'sutazai-backup manifest integrity v1\0';

export interface IntegrityAuthentication {
  method: typeof INTEGRITY_PLUGIN;
  scheme: 'hmac-sha256';
  kdf: typeof KDF;
  /** base64 */
  salt: string;
  /** hex */
  mac: string;
}

/** The KDF salt of a host's manifests. */
export function integritySalt(host: string): Buffer {
  return createHash('sha256').update(`${SALT_CONTEXT}${host}`).digest().subarray(0, 16);
}

const derived = new Map<string, Promise<Buffer>>();

function macKey(key: string, salt: Buffer): Promise<Buffer> {
  // Cached under an HMAC of the key, not the key itself.
  const id = createHmac('sha256', key).update(salt).digest('hex');
  let found = derived.get(id);
  if (!found) {
    const kdfSalt = Buffer.concat([Buffer.from(SALT_CONTEXT), salt]);
    found = new Promise<Buffer>((resolve, reject) =>
      scrypt(key, kdfSalt, 32, INTEGRITY_SCRYPT as ScryptOptions, (err, out) => (err ? reject(err) : resolve(out))),
    );
    derived.set(id, found);
  }
  return found;
}

/** The HMAC-SHA256 of a manifest without its authenticator, keyed from `key`. */
export async function integrityMac(manifest: Manifest, key: string, salt: Buffer): Promise<string> {
  const k = await macKey(key, salt);
  return createHmac('sha256', k).update(manifestAuthenticatedBytes(manifest, [AUTHENTICATION_FIELD])).digest('hex');
}

export async function authenticateManifest(manifest: Manifest, key: string): Promise<IntegrityAuthentication> {
  const salt = integritySalt(manifest.host);
  return { method: INTEGRITY_PLUGIN, scheme: 'hmac-sha256', kdf: KDF, salt: salt.toString('base64'), mac: await integrityMac(manifest, key, salt) };
}

/** Throws E_INTEGRITY unless the manifest carries an HMAC made with `key` over exactly its content. */
export async function checkManifestIntegrity(manifest: Manifest, key: string, where: string): Promise<void> {
  const found = (manifest as Record<string, unknown>)[AUTHENTICATION_FIELD] as Partial<IntegrityAuthentication> | undefined;
  const reject = (why: string) => new BackupError('E_INTEGRITY', `${where}: the manifest cannot be trusted: ${why}`);
  if (!found || typeof found !== 'object') {
    throw reject(
      'it is not authenticated, but integrity.key is configured (it may have been replaced or stripped; snapshots made before integrity was turned on cannot be checked)',
    );
  }
  if (found.method !== INTEGRITY_PLUGIN || found.scheme !== 'hmac-sha256' || found.kdf !== KDF || typeof found.salt !== 'string' || typeof found.mac !== 'string') {
    throw reject(`it is authenticated by ${String(found.method ?? found.scheme)}, not with integrity.key`);
  }
  const expected = Buffer.from(await integrityMac(manifest, key, Buffer.from(found.salt, 'base64')), 'hex');
  const actual = Buffer.from(found.mac, 'hex');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw reject('its HMAC does not match: it was altered, or integrity.key is not the key it was written with');
  }
}

/** The built-in plugin the engine applies when the rc file has `integrity:`. */
export function integrityPlugin(options: { key: string }): Plugin {
  return {
    name: INTEGRITY_PLUGIN,
    kind: 'plugin',
    apply(hooks, ctx) {
      ctx.secrets.add(options.key);
      // Derived while the run works, so the commit does not wait for scrypt.
      hooks.beforeRun.tapPromise(INTEGRITY_PLUGIN, async (run) => {
        macKey(options.key, integritySalt(run.host)).catch(() => undefined);
      });
      hooks.commit.tapPromise({ name: INTEGRITY_PLUGIN, stage: COMMIT_STAGE_AUTHENTICATE }, async ({ manifest }) => {
        (manifest as Record<string, unknown>)[AUTHENTICATION_FIELD] = await authenticateManifest(manifest, options.key);
      });
      hooks.checkManifest.tapPromise(INTEGRITY_PLUGIN, async ({ manifest, repository, logger }) => {
        const where = `${repository.name}: snapshot ${manifest.id}`;
        await checkManifestIntegrity(manifest, options.key, where);
        logger.debug(`${where}: manifest authenticated (integrity, HMAC-SHA256)`);
      });
    },
  };
}

/** Core's own plugins the rc file turns on by a top-level key, as entries the engine applies like any other. */
export function builtinPlugins(config: { integrity?: { key: string } | undefined }): PluginEntry[] {
  if (!config.integrity) return [];
  return [
    {
      key: 'integrity',
      instance: 'integrity',
      kind: 'plugin',
      use: `(built in) ${INTEGRITY_PLUGIN}`,
      resolved: '',
      options: {},
      settings: {},
      plugins: [integrityPlugin(config.integrity)],
    },
  ];
}

/**
 * `status`'s `authentication` check: a warning (not a failure) when manifests are neither
 * encrypted nor authenticated, since then whoever can write to backupRoot or a destination can
 * swap an archive and rewrite its sha256 and size unnoticed.
 */
export function authenticationCheck(config: { encryption: unknown; integrity?: unknown; repository?: { format: string } | undefined }): {
  name: string;
  ok: boolean;
  warning?: boolean;
  detail: string;
} {
  if (config.repository?.format === 'restic') return { name: 'authentication', ok: true, detail: "restic's format encrypts and authenticates every file, the manifest included" };
  if (config.integrity) return { name: 'authentication', ok: true, detail: 'manifests are authenticated (integrity.key, HMAC-SHA256)' };
  if (config.encryption) return { name: 'authentication', ok: true, detail: 'artifacts are encrypted; the encryption plugin authenticates manifests' };
  return {
    name: 'authentication',
    ok: true,
    warning: true,
    detail:
      'manifests are neither encrypted nor authenticated: whoever can write to backupRoot or a destination can swap an archive unnoticed; set integrity: { key: ${SUTAZAI_BACKUP_INTEGRITY_KEY} } (or encryption)',
  };
}

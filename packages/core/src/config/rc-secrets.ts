import { promises as fsp } from 'node:fs';
import { ConfigError } from '../errors.js';
import { joinPath } from '../schema.js';
import { isSecretKey, urlCredentials, type SecretRegistry } from '../secrets.js';
import { VAR } from './interpolate.js';

/**
 * The dotted key paths whose value is a secret written into the rc file itself: a value under a
 * secret-looking key, or a URL's password or secret query value, that is not (only) a ${VAR} reference.
 */
export function literalSecrets(value: unknown, at: string): string[] {
  const key = at.split('.').at(-1)?.replace(/\[\d+\]$/, '') ?? '';
  if (typeof value === 'string' || typeof value === 'number') {
    const text = String(value);
    if (isSecretKey(key)) return hasLiteralText(text) ? [at] : [];
    return urlCredentials(text).some(hasLiteralText) ? [at] : [];
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => literalSecrets(v, `${at}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => literalSecrets(v, joinPath(at, [k])));
  return [];
}

function hasLiteralText(text: string): boolean {
  return text.replace(VAR, '').trim().length > 0;
}

/** Registers every value under a secret-looking key, and the credentials of every URL, so that nothing prints them. */
export function registerSecrets(value: unknown, key: string, secrets: SecretRegistry): void {
  if (typeof value === 'string' || typeof value === 'number') {
    if (isSecretKey(key)) secrets.addCredential(value);
    else if (typeof value === 'string') secrets.addFromUrl(value);
    return;
  }
  if (Array.isArray(value)) value.forEach((v) => registerSecrets(v, key, secrets));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) registerSecrets(v, k, secrets);
}

/**
 * The warning for an rc file that others can read and that holds secrets in `literal` keys, or
 * undefined; with `strict` (strictPermissions) it is a config error instead.
 */
export async function exposureWarning(file: string | undefined, literal: string[], strict: boolean): Promise<string | undefined> {
  const exposure = file && literal.length ? await exposedTo(file) : undefined;
  if (!file || !exposure) return undefined;
  const message =
    `${file} is readable by ${exposure.who} (mode ${exposure.mode}) and holds secrets in ${literal.join(', ')}: ` +
    `run \`chmod 600 ${file}\`, or move them into environment variables (\${VAR})`;
  if (strict) throw new ConfigError([{ path: '', message: `${message} (strictPermissions is on)` }], file);
  return message;
}

/** Who besides the owner can read the file (group, others), or undefined when nobody can. */
async function exposedTo(file: string): Promise<{ who: string; mode: string } | undefined> {
  const st = await fsp.stat(file).catch(() => undefined);
  if (!st || (st.mode & 0o044) === 0) return undefined;
  const who = [st.mode & 0o040 ? 'its group' : '', st.mode & 0o004 ? 'everyone' : ''].filter(Boolean).join(' and ');
  return { who, mode: (st.mode & 0o777).toString(8).padStart(4, '0') };
}

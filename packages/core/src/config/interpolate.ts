import type { ConfigIssue } from '../errors.js';
import { joinPath } from '../schema.js';
import { readCredential } from '../credentials.js';
import { isSecretKey, type SecretRegistry } from '../secrets.js';

/** `${VAR}`, `${VAR:-default}`, or `$${` (a literal `${`). */
export const VAR = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * The value `${name}` stands for, or undefined when it has none (an empty variable counts as
 * unset, so that `${VAR:-default}` applies). Every lookup of the rc file goes through here.
 */
export function lookupVariable(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const found = env[name];
  return found !== undefined && found !== '' ? found : undefined;
}

/**
 * Replaces ${VAR} and ${VAR:-default} in every string value; `$${` writes a literal `${`. A
 * variable that is not set and has no default is an issue at its key. A value that comes from a
 * secret-looking variable, or lands under a secret-looking key, is registered as a secret.
 */
export function interpolate(value: unknown, at: string, env: NodeJS.ProcessEnv, issues: ConfigIssue[], secrets: SecretRegistry): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    return value.replace(VAR, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$${') return '${';
      // Absent from the environment: a systemd credential of that name ($CREDENTIALS_DIRECTORY/NAME).
      // A variable set but empty stays "not set" and does not fall through to a credential.
      const found = name! in env ? lookupVariable(name!, env) : readCredential(name!, env, secrets) || undefined;
      if (found !== undefined) {
        if (isSecretKey(name!) || isSecretKey(at.split('.').at(-1) ?? '')) secrets.add(found);
        return found;
      }
      if (fallback !== undefined) return fallback;
      issues.push({ path: at, message: `environment variable ${name} is not set (set it, or write \${${name}:-default})` });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, `${at}[${i}]`, env, issues, secrets));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, joinPath(at, [k]), env, issues, secrets);
    return out;
  }
  return value;
}

import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BackupError } from './errors.js';
import type { SecretRegistry } from './secrets.js';

/** systemd's credential names: what `${VAR}` can name, so never a path. */
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A credential is a passphrase or a token, never a file to stream: refuse anything larger. */
const MAX_BYTES = 64 * 1024;

/**
 * The value of `${NAME}` from systemd's credentials (`LoadCredential=NAME:/path` in a unit):
 * the file `$CREDENTIALS_DIRECTORY/NAME`, or undefined when there is no such directory or file.
 * One trailing newline is dropped (`echo secret > file` writes one). The value is registered as
 * a secret whatever its name: a credential is one.
 */
export function readCredential(name: string, env: NodeJS.ProcessEnv, secrets: SecretRegistry): string | undefined {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir || !NAME.test(name)) return undefined;
  const file = path.join(dir, name);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadable(name, file, (err as Error).message);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw unreadable(name, file, 'not a regular file');
    if (st.size > MAX_BYTES) throw unreadable(name, file, `${st.size} bytes, more than a credential holds (${MAX_BYTES})`);
    const value = readFileSync(fd, 'utf8').replace(/\r?\n$/, '');
    if (value) secrets.add(value);
    return value;
  } finally {
    closeSync(fd);
  }
}

function unreadable(name: string, file: string, why: string): BackupError {
  return new BackupError('E_CONFIG', `\${${name}}: the credential ${file} cannot be read: ${why}`, { details: { credential: name, file } });
}

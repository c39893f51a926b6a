import type { ConfigIssue } from './errors.js';
import { BackupError } from './errors.js';
import type { PluginEntry } from './config.js';
import type { Plugin } from './plugin.js';

/**
 * Commands that decrypt nothing (`list`, `status`, `metrics`, `serve`, `config validate`, the
 * unit and crontab printers) load the config with `deferEncryptionSecrets`: a `${VAR}` under
 * `encryption` that is not set is then no error. The encryption plugin is not loaded (its options
 * lack the secret); in its place stands one that refuses, with the usual message, anything that
 * would encrypt, decrypt or authenticate, so such an engine can never write unencrypted data.
 */

/** A dotted key path under `encryption:`. */
export function isEncryptionKey(at: string): boolean {
  return at === 'encryption' || at.startsWith('encryption.');
}

const LOCKED = 'encryption (secret not set)';

function lockedPlugin(error: () => BackupError): Plugin {
  const refuse = async () => {
    throw error();
  };
  return {
    name: LOCKED,
    kind: 'encryption',
    apply(hooks) {
      hooks.beforeRun.tapPromise(LOCKED, refuse);
      hooks.archive.tapPromise(LOCKED, refuse);
      hooks.decode.tapPromise(LOCKED, refuse);
      hooks.checkManifest.tapPromise(LOCKED, refuse);
      hooks.restoreTest.tapPromise(LOCKED, refuse);
    },
  };
}

/** The stand-in for an encryption plugin whose secrets (`missing`: the issues interpolation found) are not set. */
export function lockedEncryptionEntry(use: string, missing: ConfigIssue[], file: string | undefined): PluginEntry {
  const what = missing.map((i) => `${i.path}: ${i.message}`).join('; ');
  return {
    key: 'encryption',
    instance: 'encryption',
    kind: 'encryption',
    use,
    resolved: '',
    options: {},
    settings: {},
    plugins: [lockedPlugin(() => new BackupError('E_CONFIG', `${file ? `${file}: ` : ''}${what}: this command needs the encryption secret`))],
  };
}

/** What `config validate` says when it could not check the encryption options. */
export function encryptionNotChecked(missing: ConfigIssue[]): string {
  const names = missing.map((i) => /environment variable (\S+)/.exec(i.message)?.[1] ?? i.path);
  return `encryption options not checked: ${[...new Set(names)].join(', ')} not set (run, verify, restore and restore-test need it)`;
}

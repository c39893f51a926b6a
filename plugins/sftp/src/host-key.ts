import { createHash, createHmac } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { BackupError } from '@sutazai/backup-core';

/** `SHA256:<base64, unpadded>` of a host key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (`ssh-ed25519`, `ssh-rsa`, ...). */
export function keyType(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const n = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + n).toString('latin1');
}

/** How known_hosts names a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export interface KnownHostKey {
  type: string;
  blob: Buffer;
  revoked: boolean;
  line: number;
}

/** The keys a known_hosts file lists for a host (plain, wildcard and hashed `|1|` entries). */
export function parseKnownHosts(text: string, host: string, port: number): KnownHostKey[] {
  const name = knownHostsName(host, port);
  const out: KnownHostKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]!.startsWith('@')) marker = fields.shift();
    // Certificate authorities are not supported: such lines vouch for no key by themselves.
    if (marker === '@cert-authority' || fields.length < 3) return;
    const [patterns, type, key] = fields as [string, string, string];
    if (!hostMatches(patterns, name)) return;
    out.push({ type, blob: Buffer.from(key, 'base64'), revoked: marker === '@revoked', line: i + 1 });
  });
  return out;
}

function hostMatches(patterns: string, name: string): boolean {
  let matched = false;
  for (const pattern of patterns.split(',')) {
    if (pattern.startsWith('|1|')) {
      const [, , salt, hash] = pattern.split('|');
      if (salt && hash && createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash) matched = true;
      continue;
    }
    const negated = pattern.startsWith('!');
    const glob = negated ? pattern.slice(1) : pattern;
    const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
    if (re.test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** SSH algorithm names that use a key of this known_hosts type, most preferred first. */
export function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

export type HostKeyPolicy = { pinned: string } | { knownHostsFile: string };

/**
 * Checks the key a server presented against a pinned fingerprint or a known_hosts file. An
 * unknown or changed key is an E_AUTH error that names both fingerprints: never retried, and
 * nothing is sent.
 */
export class HostKeyCheck {
  readonly host: string;
  readonly port: number;
  readonly policy: HostKeyPolicy;
  #known: KnownHostKey[] | undefined;

  constructor(host: string, port: number, policy: HostKeyPolicy) {
    this.host = host;
    this.port = port;
    this.policy = policy;
  }

  /** Reads the known_hosts file (before connecting, so that its key types can be preferred). */
  async load(): Promise<KnownHostKey[]> {
    if ('pinned' in this.policy) return [];
    let text: string;
    try {
      text = await fsp.readFile(this.policy.knownHostsFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      text = '';
    }
    this.#known = parseKnownHosts(text, this.host, this.port);
    return this.#known;
  }

  /** Algorithms to ask for first, so the server presents a key of the type already known. */
  preferredAlgorithms(): string[] {
    return [...new Set((this.#known ?? []).filter((k) => !k.revoked).flatMap((k) => hostKeyAlgorithms(k.type)))];
  }

  /** Returns undefined when the key is trusted, else the error to report. */
  verify(keyBlob: Buffer): BackupError | undefined {
    const name = knownHostsName(this.host, this.port);
    const got = fingerprint(keyBlob);
    const type = keyType(keyBlob);
    if ('pinned' in this.policy) {
      const want = this.policy.pinned.replace(/=+$/, '');
      if (got === want) return undefined;
      return new BackupError(
        'E_AUTH',
        `host key of ${name} does not match the pinned hostKey: the server presented ${type} ${got}, hostKey pins ${want}. ` +
          'If the server was reinstalled or its key rotated on purpose, pin the new fingerprint; otherwise the connection may be intercepted. Nothing was sent.',
        { details: { host: name, presented: got, expected: want } },
      );
    }
    const file = this.policy.knownHostsFile;
    const known = this.#known ?? [];
    const same = known.find((k) => k.blob.equals(keyBlob));
    if (same?.revoked) {
      return new BackupError('E_AUTH', `host key of ${name} (${type} ${got}) is marked @revoked in ${file} (line ${same.line}). Nothing was sent.`, {
        details: { host: name, presented: got },
      });
    }
    if (same) return undefined;
    const trusted = known.filter((k) => !k.revoked);
    if (trusted.length) {
      const expected = trusted.map((k) => `${k.type} ${fingerprint(k.blob)} (line ${k.line})`).join(', ');
      return new BackupError(
        'E_AUTH',
        `host key of ${name} CHANGED: the server presented ${type} ${got}, but ${file} holds ${expected}. ` +
          `If the server's key was changed on purpose, remove the old line (ssh-keygen -R '${name}' -f ${file}) and add the new key after checking its fingerprint; ` +
          'otherwise someone may be intercepting the connection. Nothing was sent.',
        { details: { host: name, presented: got, expected: trusted.map((k) => fingerprint(k.blob)) } },
      );
    }
    return new BackupError(
      'E_AUTH',
      `host key of ${name} is unknown: the server presented ${type} ${got}, and ${file} has no key for ${name}. ` +
        `Check the fingerprint with the server's administrator, then add it (ssh-keyscan${this.port === 22 ? '' : ` -p ${this.port}`} ${this.host} >> ${file}) ` +
        `or pin it with hostKey: "${got}". Nothing was sent.`,
      { details: { host: name, presented: got } },
    );
  }
}

/**
 * Shared set-up for the replication integration tests: a data tree, an rc file naming the four
 * destinations against real servers on loopback, and checks on what the servers hold.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describeTree, writeTree } from '@sutazai/backup-testkit';
import { expect } from 'vitest';
import type { CliResult } from './cli.js';
import type { S3Server, SshServer } from './servers.js';

export const BUCKET = 'sutazai-backups';
/**
 * The S3 secret key the tests configure. s3rver checks the access key id but not V4 signatures,
 * so a distinctive secret can be used: the leak checks then cannot match anything by chance.
 */
export const S3_SECRET = `s3-secret-${randomBytes(8).toString('hex')}`;
export const HOST = 'it-host';

export interface DestinationSpec {
  drive?: { path: string; requireMount?: boolean };
  offsite?: { server: S3Server; queueSize?: number };
  vault?: { server: SshServer };
  mirror?: { server: SshServer };
}

/** A source tree: text, a nested folder, an executable, and `bigBytes` of incompressible data. */
export async function makeData(dir: string, bigBytes = 2 * 1024 * 1024): Promise<void> {
  await writeTree(dir, {
    'app.yaml': 'model: llama3\nreplicas: 2\n',
    'notes ü 日本.txt': 'unicode names survive\n',
    deep: { nested: { 'settings.json': JSON.stringify({ a: 1, b: [1, 2, 3] }) } },
    'run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o750 },
  });
  await fsp.writeFile(path.join(dir, 'weights.bin'), randomBytes(bigBytes));
}

export function rcYaml(opts: { dataDir: string; dest: DestinationSpec; host?: string; extra?: string }): string {
  const d = opts.dest;
  const lines = [
    'backupRoot: ./backups',
    `host: ${opts.host ?? HOST}`,
    'sources:',
    `  configs: { use: files, paths: [${JSON.stringify(opts.dataDir)}] }`,
    'destinations:',
  ];
  if (d.drive) lines.push(`  drive: { use: local, path: ${JSON.stringify(d.drive.path)}, requireMount: ${Boolean(d.drive.requireMount)} }`);
  if (d.offsite) {
    const s = d.offsite.server;
    lines.push(
      '  offsite:',
      '    use: s3',
      `    bucket: ${BUCKET}`,
      `    endpoint: ${s.endpoint}`,
      `    region: ${s.region}`,
      '    forcePathStyle: true',
      `    accessKeyId: ${s.accessKeyId}`,
      '    secretAccessKey: ${S3_SECRET_KEY}',
      '    partSizeMB: 5',
      `    queueSize: ${d.offsite.queueSize ?? 2}`,
    );
  }
  if (d.vault) {
    const s = d.vault.server;
    lines.push(
      '  vault:',
      '    use: sftp',
      `    host: ${s.host}`,
      `    port: ${s.port}`,
      `    username: ${s.user}`,
      `    privateKey: ${JSON.stringify(s.encryptedKeyPath)}`,
      '    passphrase: ${SSH_KEY_PASSPHRASE}',
      `    knownHosts: ${JSON.stringify(s.knownHostsPath)}`,
      `    path: ${JSON.stringify(path.join(s.homeDir, 'sftp'))}`,
    );
  }
  if (d.mirror) {
    const s = d.mirror.server;
    lines.push(
      '  mirror:',
      '    use: rsync',
      `    target: ${JSON.stringify(`${s.user}@${s.host}:${path.join(s.homeDir, 'rsync')}`)}`,
      `    port: ${s.port}`,
      `    privateKey: ${JSON.stringify(s.encryptedKeyPath)}`,
      '    passphrase: ${SSH_KEY_PASSPHRASE}',
      `    knownHosts: ${JSON.stringify(s.knownHostsPath)}`,
    );
  }
  if (opts.extra) lines.push(opts.extra);
  return `${lines.join('\n')}\n`;
}

/** Environment for the CLI: the secrets come in through ${VAR}, as in production. */
export function secretEnv(dest: DestinationSpec): NodeJS.ProcessEnv {
  const ssh = dest.vault?.server ?? dest.mirror?.server;
  return {
    ...(dest.offsite ? { S3_SECRET_KEY: S3_SECRET } : {}),
    ...(ssh ? { SSH_KEY_PASSPHRASE: ssh.keyPassphrase } : {}),
  };
}

/** Where each destination keeps the repository of HOST on disk (s3rver's store, the sshd home). */
export function storageRoots(dest: DestinationSpec, host = HOST): Record<string, string> {
  const out: Record<string, string> = {};
  if (dest.drive) out.drive = path.join(dest.drive.path, host);
  if (dest.offsite) out.offsite = path.join(dest.offsite.server.directory, BUCKET, host);
  if (dest.vault) out.vault = path.join(dest.vault.server.homeDir, 'sftp', host);
  if (dest.mirror) out.mirror = path.join(dest.mirror.server.homeDir, 'rsync', host);
  return out;
}

export async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Every file under `dir` (relative paths), hidden ones included. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * The names a destination's store shows for a snapshot's objects. s3rver stores an object `k` as
 * `k._S3rver_object`; the file destinations store it as `k`.
 */
export async function storedObjects(root: string, id: string): Promise<string[]> {
  const files = await filesUnder(path.join(root, 'snapshots', id));
  return files.filter((f) => !f.includes('._S3rver_') || f.endsWith('._S3rver_object')).map((f) => f.replace(/\._S3rver_object$/, ''));
}

/** Fails if any secret appears in any of the texts (logs, reports, manifests). */
export function expectNoSecrets(texts: Record<string, string>, secrets: string[]): void {
  for (const [where, text] of Object.entries(texts)) {
    for (const secret of secrets) {
      expect(text.includes(secret), `a secret appears in ${where}`).toBe(false);
    }
  }
}

export function cliText(r: CliResult): string {
  return `${r.stdout}\n${r.stderr}`;
}

export async function expectSameTree(restored: string, original: string): Promise<void> {
  expect(await describeTree(restored)).toEqual(await describeTree(original));
}

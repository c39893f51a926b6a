import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { literalSecrets, loadConfig } from '../src/config.js';
import type { Destination } from '../src/destination.js';
import { canonicalJson, isPlainFileName, joinInside, joinPlainName, manifestAuthenticatedBytes, parseManifest, type Manifest } from '../src/manifest.js';
import { Repository } from '../src/repository.js';
import { DecodedSizeCheck } from '../src/pipeline/stored-bytes.js';
import { isSecretKey, SecretRegistry } from '../src/secrets.js';

const manifest = (): Manifest => ({
  formatVersion: 1,
  id: '20261126T020000Z-daily-3f9a',
  profile: 'daily',
  host: 'h',
  startedAt: 'a',
  finishedAt: 'b',
  tool: { name: 't', version: '1' },
  artifacts: [],
});

describe('canonical manifest bytes', () => {
  it('do not depend on key order and leave out the named fields', () => {
    const a = { b: 1, a: { d: [1, { y: 2, x: 1 }], c: 'x' } };
    const b = { a: { c: 'x', d: [1, { x: 1, y: 2 }] }, b: 1 };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson(a)).toBe('{"a":{"c":"x","d":[1,{"x":1,"y":2}]},"b":1}');
    const m = { ...manifest(), authentication: { mac: 'x' } } as Manifest;
    expect(manifestAuthenticatedBytes(m, ['authentication']).toString()).not.toContain('authentication');
    expect(manifestAuthenticatedBytes(m, ['authentication']).toString()).toContain('"id":"20261126T020000Z-daily-3f9a"');
  });

  it('a manifest whose source names a path is refused when read', () => {
    const bad = {
      ...manifest(),
      artifacts: [{ source: '../../etc', plugin: 'files', file: 'x.tar', type: 'tree', bytes: 0, sha256: '0'.repeat(64), rawBytes: 0, compression: 'none', encryption: null, meta: {} }],
    };
    expect(() => parseManifest(JSON.stringify(bad), 'here')).toThrow(/artifacts\.0\.source: a plain source name/);
    const dots = { ...bad, artifacts: [{ ...bad.artifacts[0]!, source: 'ok', file: '..' }] };
    expect(() => parseManifest(JSON.stringify(dots), 'here')).toThrow(/artifacts\.0\.file/);
  });
});

describe('the name grammar of what a repository hands back', () => {
  const artifact = { source: 'db', plugin: 'command', file: 'db.out', type: 'file', filename: 'db.out', bytes: 0, sha256: '0'.repeat(64), rawBytes: 0, compression: 'none', encryption: null, meta: {} };
  const withArtifact = (change: Record<string, unknown>) => JSON.stringify({ ...manifest(), artifacts: [{ ...artifact, ...change }] });
  const where = 'backupRoot: snapshots/20261126T020000Z-daily-3f9a/manifest.json';

  it('refuses a filename or file that is not one plain path component, naming the snapshot, field and value', () => {
    for (const filename of ['../../../../tmp/x/planted', '/etc/cron.d/x', 'a/b', 'a\\b', '..', '.', '', 'x\ny', 'nul\u0000', 'é'.repeat(200)]) {
      let error: unknown;
      try {
        parseManifest(withArtifact({ filename }), where);
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(filename)).toMatchObject({
        code: 'E_INTEGRITY',
        message: expect.stringContaining(`${where}: manifest is not valid: artifacts.0.filename: a plain file name`),
      });
    }
    expect(() => parseManifest(withArtifact({ filename: '../../../../tmp/x/planted' }), where)).toThrow('("../../../../tmp/x/planted")');
    expect(() => parseManifest(withArtifact({ file: '../db.out' }), where)).toThrow(/artifacts\.0\.file: a plain file name/);
    expect(() => parseManifest(withArtifact({ file: 'manifest.json' }), where)).toThrow(/artifacts\.0\.file: not manifest\.json/);
  });

  it('accepts the names the tool and its plugins write', () => {
    for (const [file, filename] of [['app-db.sutazai.pgdump.zst.gpg', 'sutazai.pgdump'], ['agents.sqlite.gz', 'agents db (copy).db'], ['redis.rdb.zst', 'dump.rdb'], ['grafana.db.sqlite.zst', 'grafana.db']]) {
      expect(parseManifest(withArtifact({ file, filename }), where).artifacts[0]).toMatchObject({ file, filename });
    }
  });

  it('refuses a profile that is not a plain name', () => {
    expect(() => parseManifest(JSON.stringify({ ...manifest(), profile: '../daily' }), where)).toThrow(/manifest is not valid: profile: a plain name/);
  });

  it('joinPlainName refuses what the grammar refuses, wherever a name becomes a path', () => {
    expect(joinPlainName('/scratch', 'db.out', 'x')).toBe('/scratch/db.out');
    expect(() => joinPlainName('/scratch', '../../etc/passwd', 'backupRoot: s/db.out')).toThrow(/backupRoot: s\/db\.out: refused file name "\.\.\/\.\.\/etc\/passwd"/);
    expect(isPlainFileName('..')).toBe(false);
    // A path in a manifest's meta (Ollama's models folder) stays inside the restored tree.
    expect(joinInside('/restored/models', '/root/.ollama/models', 'x')).toBe('/restored/models/root/.ollama/models');
    expect(() => joinInside('/restored/models', '/../../etc', 'id/models.tar.zst')).toThrow(/id\/models\.tar\.zst: refused path "\/\.\.\/\.\.\/etc": it leads outside \/restored\/models/);
    expect(() => joinInside('/restored', 'manifests/../../x', 'x')).toThrow(/leads outside/);
  });

  it("a destination's listing drops keys outside the grammar, so they never become paths", async () => {
    // An in-memory object store (the Destination interface; no server holds such keys here):
    // S3 keys may hold "..", and a listing is what prune deletes and replication copies.
    const id = '20261126T020000Z-daily-3f9a';
    const keys = [`snapshots/${id}/manifest.json`, `snapshots/${id}/db.out`, `snapshots/${id}/../../../etc/passwd`, `snapshots/${id}/a/b`, `snapshots/../x/y`, `snapshots/${id}/`];
    const store: Destination = {
      description: 'memory',
      put: async () => {},
      get: async () => Readable.from([]),
      list: async (prefix) => keys.filter((k) => k.startsWith(prefix)).map((key) => ({ key, size: 1 })),
      delete: async () => {},
      stat: async () => undefined,
    };
    const listing = await new Repository(store, 'destinations.offsite').listing();
    expect(listing.ids).toEqual([id]);
    expect(listing.objects.get(id)!.map((o) => o.key)).toEqual([`snapshots/${id}/manifest.json`, `snapshots/${id}/db.out`]);
  });
});

describe('DecodedSizeCheck', () => {
  const run = (chunks: Buffer[], expected: number) => pipeline(Readable.from(chunks), new DecodedSizeCheck(expected, 'x'), async function* (s) {
    for await (const _ of s) yield;
  });
  it('stops as soon as the decoded bytes exceed the record', async () => {
    await expect(run([Buffer.alloc(10), Buffer.alloc(10)], 15)).rejects.toThrow(/decodes to more than the 15 bytes the manifest records/);
  });
  it('fails when fewer bytes come out, passes when exact', async () => {
    await expect(run([Buffer.alloc(10)], 15)).rejects.toThrow(/decodes to 10 bytes, the manifest records 15/);
    await expect(run([Buffer.alloc(10), Buffer.alloc(5)], 15)).resolves.toBeUndefined();
  });
});

describe('secrets in the rc file', () => {
  it('keys that name a file or path hold a location, not a secret', () => {
    expect(isSecretKey('privateKey')).toBe(true);
    expect(isSecretKey('privateKeyFile')).toBe(false);
    expect(isSecretKey('passwordFile')).toBe(false);
    expect(isSecretKey('passphrase')).toBe(true);
    // An incoming-webhook URL (Slack) is the credential itself.
    expect(isSecretKey('webhook')).toBe(true);
    expect(isSecretKey('BACKUP_SLACK_WEBHOOK')).toBe(true);
  });

  it('finds literal secrets, not ${VAR} references', () => {
    expect(
      literalSecrets(
        {
          encryption: { use: 'gpg', passphrase: '${PW}' },
          sources: { db: { url: 'postgres://u:hunter22@h/db' }, env: { url: 'postgres://u:${PG_PW}@h/db' } },
          notify: { chat: { token: 'abc123456' }, mail: { password: ' ${A}${B} ' } },
          keys: { privateKeyFile: './k.asc' },
        },
        '',
      ),
    ).toEqual(['sources.db.url', 'notify.chat.token']);
  });

  describe('file permissions', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rc-perm-'));
      await fsp.mkdir(path.join(dir, 'data'));
    });
    afterEach(async () => {
      await fsp.rm(dir, { recursive: true, force: true });
    });

    const write = async (text: string, mode: number) => {
      const file = path.join(dir, '.sutazai-backuprc');
      await fsp.writeFile(file, text);
      await fsp.chmod(file, mode);
      return file;
    };
    const rc = (secret: string, extra = '') =>
      `backupRoot: ./b\n${extra}sources:\n  d: { use: ./plugin.mjs, token: "${secret}" }\n`;

    beforeEach(async () => {
      const core = path.resolve(__dirname, '../dist/index.js');
      await fsp.writeFile(
        path.join(dir, 'plugin.mjs'),
        `import { definePlugin, z } from ${JSON.stringify(core)};\nexport default definePlugin({ name: 'p', kind: 'source', options: z.object({ token: z.string() }), apply() {} });\n`,
      );
    });

    it('warns when others can read literal secrets, naming the keys and the fix', async () => {
      const configPath = await write(rc('literal-token-1'), 0o644);
      const config = await loadConfig({ configPath, secrets: new SecretRegistry(), env: {} });
      expect(config.warnings).toHaveLength(1);
      expect(config.warnings[0]).toContain(`${configPath} is readable by its group and everyone (mode 0644) and holds secrets in sources.d.token`);
      expect(config.warnings[0]).toContain(`chmod 600 ${configPath}`);
    });

    it('refuses to load with strictPermissions: true', async () => {
      const configPath = await write(rc('literal-token-1', 'strictPermissions: true\n'), 0o640);
      await expect(loadConfig({ configPath, secrets: new SecretRegistry(), env: {} })).rejects.toThrow(/readable by its group \(mode 0640\).*strictPermissions is on/);
    });

    it('says nothing for a private file, or secrets from the environment', async () => {
      let configPath = await write(rc('literal-token-1', 'strictPermissions: true\n'), 0o600);
      expect((await loadConfig({ configPath, secrets: new SecretRegistry(), env: {} })).warnings).toEqual([]);
      configPath = await write(rc('${TOKEN}', 'strictPermissions: true\n'), 0o644);
      expect((await loadConfig({ configPath, secrets: new SecretRegistry(), env: { TOKEN: 'from-env-1' } })).warnings).toEqual([]);
    });
  });
});

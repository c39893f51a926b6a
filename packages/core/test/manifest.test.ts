// What a manifest must be before verify, restore or prune trusts it: each field's rule, the
// errors that name the manifest and the field, and the canonical bytes its authenticator covers.
import { describe, expect, it } from 'vitest';
import { isBackupError } from '../src/errors.js';
import {
  canonicalJson,
  isSourceName,
  MANIFEST_FILE,
  MANIFEST_FORMAT_VERSION,
  manifestAuthenticatedBytes,
  manifestBytes,
  parseManifest,
  serializeManifest,
  type ArtifactRecord,
  type Manifest,
} from '../src/manifest.js';

const artifact = (over: Record<string, unknown> = {}): ArtifactRecord =>
  ({
    source: 'configs',
    plugin: 'files',
    file: 'configs.tar.zst',
    type: 'tree',
    bytes: 120,
    sha256: 'a'.repeat(64),
    rawBytes: 2560,
    compression: 'zstd',
    encryption: null,
    meta: { entries: { files: 1 } },
    ...over,
  }) as ArtifactRecord;

const manifest = (over: Record<string, unknown> = {}): Manifest =>
  ({
    formatVersion: 1,
    id: '20261126T020000Z-daily-3f9a',
    profile: 'daily',
    host: 'sutazai-prod-1',
    startedAt: '2026-11-26T02:00:00.000Z',
    finishedAt: '2026-11-26T02:00:09.000Z',
    tool: { name: 'sutazai-backup', version: '0.1.0' },
    artifacts: [artifact()],
    ...over,
  }) as Manifest;

/** The error parseManifest throws for `value` (as JSON text). */
function refusal(value: unknown): { code: string; message: string; cause?: unknown } {
  try {
    parseManifest(typeof value === 'string' ? value : JSON.stringify(value), 's3://bucket/snapshots/x/manifest.json');
  } catch (err) {
    expect(isBackupError(err)).toBe(true);
    return err as { code: string; message: string };
  }
  throw new Error('parseManifest accepted it');
}

describe('reading a manifest', () => {
  it('accepts a whole one, keeping fields it does not know', () => {
    const m = manifest({ authentication: { kdf: 's2k-sha256', mac: 'ab' }, artifacts: [artifact({ filename: 'agents.db', type: 'file', encryption: { method: 'gpg', recipients: 1 } })] });
    expect(parseManifest(JSON.stringify(m), 'here')).toEqual(m);
    expect(MANIFEST_FORMAT_VERSION).toBe(1);
    expect(MANIFEST_FILE).toBe('manifest.json');
  });

  it('refuses text that is not JSON, naming the manifest', () => {
    const err = refusal('{"formatVersion": 1,');
    expect(err.code).toBe('E_INTEGRITY');
    expect(err.message).toMatch(/^s3:\/\/bucket\/snapshots\/x\/manifest\.json: manifest is not valid JSON \(.+\)$/);
    // The parser's own error stays attached, for --log-level debug and bug reports.
    expect(err.cause).toBeInstanceOf(SyntaxError);
  });

  it('refuses what is not an object, at the root', () => {
    for (const value of [null, [], '"manifest"', 7]) {
      const err = refusal(value);
      expect(err.code).toBe('E_INTEGRITY');
      expect(err.message).toMatch(/^s3:\/\/bucket\/snapshots\/x\/manifest\.json: manifest is not valid: \(root\): /);
    }
  });

  it('names the first field that breaks a rule, by its path', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ formatVersion: 2 }, 'formatVersion: '],
      [{ id: '../20261126T020000Z-daily-3f9a' }, 'id: a snapshot id like 20261126T020000Z-daily-3f9a'],
      [{ id: '20261399T020000Z-daily-3f9a' }, 'id: a snapshot id like 20261126T020000Z-daily-3f9a'],
      [{ profile: 7 }, 'profile: '],
      [{ host: null }, 'host: '],
      [{ startedAt: undefined }, 'startedAt: '],
      [{ finishedAt: 1 }, 'finishedAt: '],
      [{ tool: { name: 'sutazai-backup' } }, 'tool.version: '],
      [{ artifacts: {} }, 'artifacts: '],
      [{ artifacts: [artifact({ source: '../../etc' })] }, 'artifacts.0.source: a plain source name (letters, digits, "-", "_")'],
      [{ artifacts: [artifact({ source: '-x' })] }, 'artifacts.0.source: a plain source name'],
      [{ artifacts: [artifact({ plugin: 1 })] }, 'artifacts.0.plugin: '],
      [{ artifacts: [artifact({ file: 'a/b.tar' })] }, 'artifacts.0.file: a plain file name'],
      [{ artifacts: [artifact({ file: 'a\\b.tar' })] }, 'artifacts.0.file: a plain file name'],
      [{ artifacts: [artifact({ file: '..' })] }, 'artifacts.0.file: a plain file name'],
      [{ artifacts: [artifact({ file: '.' })] }, 'artifacts.0.file: a plain file name'],
      [{ artifacts: [artifact({ file: '' })] }, 'artifacts.0.file: a plain file name'],
      [{ artifacts: [artifact({ type: 'folder' })] }, 'artifacts.0.type: '],
      [{ artifacts: [artifact({ filename: 3 })] }, 'artifacts.0.filename: '],
      [{ artifacts: [artifact({ bytes: -1 })] }, 'artifacts.0.bytes: '],
      [{ artifacts: [artifact({ bytes: 1.5 })] }, 'artifacts.0.bytes: '],
      [{ artifacts: [artifact({ sha256: 'A'.repeat(64) })] }, 'artifacts.0.sha256: '],
      [{ artifacts: [artifact({ sha256: 'a'.repeat(63) })] }, 'artifacts.0.sha256: '],
      [{ artifacts: [artifact({ sha256: `${'a'.repeat(64)}0` })] }, 'artifacts.0.sha256: '],
      [{ artifacts: [artifact({ sha256: `x${'a'.repeat(64)}` })] }, 'artifacts.0.sha256: '],
      [{ artifacts: [artifact({ rawBytes: -5 })] }, 'artifacts.0.rawBytes: '],
      [{ artifacts: [artifact({ rawBytes: 0.5 })] }, 'artifacts.0.rawBytes: '],
      [{ artifacts: [artifact({ compression: 'xz' })] }, 'artifacts.0.compression: '],
      [{ artifacts: [artifact({ encryption: undefined })] }, 'artifacts.0.encryption: '],
      [{ artifacts: [artifact({ encryption: { recipients: 1 } })] }, 'artifacts.0.encryption.method: '],
      [{ artifacts: [artifact({ meta: [] })] }, 'artifacts.0.meta: '],
      [{ artifacts: [artifact(), artifact({ file: 'x/y' })] }, 'artifacts.1.file: '],
    ];
    for (const [over, message] of cases) {
      const err = refusal(manifest(over));
      expect(err.code, message).toBe('E_INTEGRITY');
      expect(err.message, JSON.stringify(over)).toContain(`s3://bucket/snapshots/x/manifest.json: manifest is not valid: ${message}`);
    }
  });

  it('takes every compression, and zero-sized artifacts', () => {
    for (const compression of ['zstd', 'gzip', 'none']) expect(parseManifest(JSON.stringify(manifest({ artifacts: [artifact({ compression })] })), 'm').artifacts[0]!.compression).toBe(compression);
    expect(parseManifest(JSON.stringify(manifest({ artifacts: [artifact({ bytes: 0, rawBytes: 0 })] })), 'm').artifacts[0]!.bytes).toBe(0);
    expect(parseManifest(JSON.stringify(manifest({ artifacts: [] })), 'm').artifacts).toEqual([]);
  });
});

describe('source names', () => {
  it('are plain names: a letter or digit, then letters, digits, "-" and "_", up to 63', () => {
    for (const good of ['a', '0', 'app-db', 'agents_2', 'A'.repeat(63)]) expect(isSourceName(good), good).toBe(true);
    for (const bad of ['', '-a', '_a', 'a/b', '../a', 'a.b', 'a b', 'a\n', '\na', 'A'.repeat(64), 'é']) expect(isSourceName(bad), bad).toBe(false);
  });
});

describe('writing a manifest', () => {
  it('is JSON indented by two spaces, ending with a newline, and reads back equal', () => {
    const m = manifest();
    const text = serializeManifest(m);
    expect(text).toBe(`${JSON.stringify(m, null, 2)}\n`);
    expect(text.split('\n')[1]).toBe('  "formatVersion": 1,');
    expect(parseManifest(text, 'm')).toEqual(m);
  });

  it('adds up the stored bytes of its artifacts', () => {
    expect(manifestBytes(manifest({ artifacts: [artifact({ bytes: 120 }), artifact({ bytes: 7, file: 'b.zst' })] }))).toBe(127);
    expect(manifestBytes(manifest({ artifacts: [] }))).toBe(0);
  });
});

describe('canonical JSON', () => {
  it('sorts keys at every depth, keeps array order, and drops undefined fields', () => {
    expect(canonicalJson({ b: 2, a: 1, c: { z: [3, 1, 2], y: undefined, x: null } })).toBe('{"a":1,"b":2,"c":{"x":null,"z":[3,1,2]}}');
    expect(canonicalJson({ B: 1, a: 2, _: 3, '10': 4, '9': 5 })).toBe('{"10":4,"9":5,"B":1,"_":3,"a":2}');
  });

  it('writes undefined in an array as null, and a bare undefined as null', () => {
    expect(canonicalJson([1, undefined, 'x'])).toBe('[1,null,"x"]');
    expect(canonicalJson(undefined)).toBe('null');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
  });

  it('escapes strings and keys as JSON does', () => {
    expect(canonicalJson({ 'k"ey': 'va\nlue', n: 1.5, t: true, f: false, e: '' })).toBe('{"e":"","f":false,"k\\"ey":"va\\nlue","n":1.5,"t":true}');
  });
});

describe('the bytes an authenticator covers', () => {
  it('are the canonical JSON of the whole manifest without the named top-level fields', () => {
    const m = manifest({ authentication: { mac: 'ab' }, signature: 'sig' });
    const covered = manifestAuthenticatedBytes(m, ['authentication', 'signature']).toString('utf8');
    const { authentication: _a, signature: _s, ...rest } = m as Manifest & { authentication: unknown; signature: unknown };
    expect(covered).toBe(canonicalJson(rest));
    expect(manifestAuthenticatedBytes(m, ['authentication']).toString('utf8')).toContain('"signature":"sig"');
    // The manifest itself is left whole.
    expect(m).toHaveProperty('authentication');
  });

  it('change with any field, the id included', () => {
    const base = manifestAuthenticatedBytes(manifest(), []);
    expect(manifestAuthenticatedBytes(manifest({ id: '20261126T020000Z-daily-3f9b' }), [])).not.toEqual(base);
    expect(manifestAuthenticatedBytes(manifest({ artifacts: [artifact({ sha256: 'b'.repeat(64) })] }), [])).not.toEqual(base);
    expect(manifestAuthenticatedBytes(manifest(), [])).toEqual(base);
  });
});

/**
 * The name grammar at its edges (the longest name, names starting with a dot, a path that is
 * exactly "..") and what a refused manifest tells the user: the field, the value (shortened),
 * and the field again in `--json`'s details.
 */
import { describe, expect, it } from 'vitest';
import type { BackupError } from '../src/errors.js';
import { isPlainFileName, joinInside, joinPlainName, parseManifest } from '../src/manifest.js';

const toJSON = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as BackupError).toJSON();
  }
  throw new Error('not refused');
};

describe('plain file names', () => {
  it('may be 255 bytes long, not 256, counted in UTF-8', () => {
    expect(isPlainFileName('a'.repeat(255))).toBe(true);
    expect(isPlainFileName('a'.repeat(256))).toBe(false);
    expect(isPlainFileName(`${'é'.repeat(127)}a`)).toBe(true);
    expect(isPlainFileName('é'.repeat(128))).toBe(false);
  });

  it('may start with a dot (the marker of an incomplete snapshot does), but not be "." or ".."', () => {
    for (const name of ['.sutazai-incomplete.json', '..data', '...']) expect(isPlainFileName(name), name).toBe(true);
    for (const name of ['.', '..']) expect(isPlainFileName(name), name).toBe(false);
  });

  it('joinPlainName names what it refused, and where it came from', () => {
    expect(toJSON(() => joinPlainName('/scratch', 'a/b', 'backupRoot: 20261126T020000Z-daily-3f9a/db.dump'))).toEqual({
      code: 'E_INTEGRITY',
      message: 'backupRoot: 20261126T020000Z-daily-3f9a/db.dump: refused file name "a/b": not a plain file name (one path component: no "/", "\\", control characters, "." or "..")',
    });
  });
});

describe('joinInside', () => {
  it('joins a path that stays inside, and refuses one that is exactly "..", climbs out, or holds a NUL', () => {
    expect(joinInside('/restored', 'a/b/../c', 'x')).toBe('/restored/a/c');
    expect(joinInside('/restored', '..hidden/x', 'x')).toBe('/restored/..hidden/x');
    for (const rel of ['..', 'a/../..', '../sibling', 'a\u0000b']) {
      expect(toJSON(() => joinInside('/restored', rel, 'id/models.tar.zst')), JSON.stringify(rel)).toEqual({
        code: 'E_INTEGRITY',
        message: `id/models.tar.zst: refused path ${JSON.stringify(rel)}: it leads outside /restored`,
      });
    }
  });
});

describe('a refused manifest', () => {
  const valid = {
    formatVersion: 1,
    id: '20261126T020000Z-daily-3f9a',
    profile: 'daily',
    host: 'h',
    startedAt: 'a',
    finishedAt: 'b',
    tool: { name: 'sutazai-backup', version: '1' },
    artifacts: [{ source: 'db', plugin: 'command', file: 'db.dump', type: 'file', bytes: 0, sha256: '0'.repeat(64), rawBytes: 0, compression: 'none', encryption: null, meta: {} }],
  };
  const where = 'backupRoot: snapshots/20261126T020000Z-daily-3f9a/manifest.json';

  it('names the field and its value, shortened after 100 characters', () => {
    const long = `../${'x'.repeat(150)}`;
    const json = toJSON(() => parseManifest(JSON.stringify({ ...valid, artifacts: [{ ...valid.artifacts[0], filename: long }] }), where));
    expect(json).toEqual({
      code: 'E_INTEGRITY',
      message: `${where}: manifest is not valid: artifacts.0.filename: a plain file name (one path component: no "/", "\\", control characters, "." or "..") (${JSON.stringify(`${long.slice(0, 100)}...`)})`,
      details: { field: 'artifacts.0.filename' },
    });
    const hundred = `../${'x'.repeat(97)}`;
    expect(toJSON(() => parseManifest(JSON.stringify({ ...valid, profile: hundred }), where)).message).toMatch(new RegExp(`\\(${JSON.stringify(hundred).replace(/[.]/g, '\\.')}\\)$`));
  });

  it('that is not an object is refused at its root', () => {
    expect(toJSON(() => parseManifest('[]', where))).toEqual({
      code: 'E_INTEGRITY',
      message: `${where}: manifest is not valid: (root): Invalid input: expected object, received array`,
      details: { field: '' },
    });
  });
});

import { describe, expect, it } from 'vitest';
import { GoMode, type ResticNode } from '../../src/restic/node.js';
import { checkSnapshot, newSnapshot } from '../../src/restic/snapshot.js';
import { decodeTree, encodeTree, sortNodes } from '../../src/restic/tree.js';

const ID = 'a'.repeat(64);
const node = (name: string, extra: Partial<ResticNode> = {}): ResticNode => ({
  name,
  type: 'file',
  mode: 0o644,
  mtime: '2024-01-02T03:04:05.5Z',
  atime: '2024-01-02T03:04:05.5Z',
  ctime: '2024-01-02T03:04:05.5Z',
  uid: 0,
  gid: 0,
  content: [],
  ...extra,
});

describe('tree blobs', () => {
  it('sorts nodes by their bytes, as Go compares names', () => {
    // UTF-16 order would put U+FF5E before U+1F600; UTF-8 byte order puts it after.
    const names = sortNodes([node('😀'), node('～'), node('B'), node('a'), node('')]).map((n) => n.name);
    expect(names).toEqual(['', 'B', 'a', '～', '😀']);
  });

  it('keeps 64-bit inode and device numbers exact', () => {
    const big = node('f', { inode: 18446744073709551557n, deviceId: 9007199254740993n });
    const text = encodeTree([big]).toString();
    expect(text).toContain('"inode":18446744073709551557,"device_id":9007199254740993');
    expect(decodeTree(Buffer.from(text), 't')[0]).toMatchObject({ inode: 18446744073709551557n, deviceId: 9007199254740993n });
  });

  it('writes an empty folder as restic does, and reads a null node list', () => {
    expect(encodeTree([]).toString()).toBe('{"nodes":[]}\n');
    expect(decodeTree(Buffer.from('{"nodes":null}'), 't')).toEqual([]);
  });

  it('round-trips link targets that are not UTF-8 through linktarget_raw', () => {
    const raw = Buffer.from([0x2e, 0x2e, 0x2f, 0xff]);
    const link = node('l', { type: 'symlink', mode: GoMode.symlink + 0o777, content: null, linkTarget: raw.toString(), linkTargetRaw: raw });
    expect(decodeTree(encodeTree([link]), 't')[0]!.linkTargetRaw).toEqual(raw);
  });

  it.each([
    ['not JSON', '{"nodes":[', /is not JSON/],
    ['no node list', '{"trees":[]}', /no "nodes" list/],
    ['a node without a name', '{"nodes":[{"type":"file"}]}', /node 0: a node without a name/],
    ['a name Go cannot unquote', '{"nodes":[{"name":"a\\\\q","type":"file"}]}', /unknown escape/],
    ['a content id that is not one', '{"nodes":[{"name":"f","type":"file","content":["../../etc"]}]}', /not a blob id/],
    ['a subtree id that is not one', '{"nodes":[{"name":"d","type":"dir","subtree":"xyz"}]}', /subtree is not valid/],
    ['a negative size', '{"nodes":[{"name":"f","type":"file","size":-1}]}', /size is not valid/],
  ])('refuses a tree with %s, naming it', (_what, text, message) => {
    expect(() => decodeTree(Buffer.from(text), 'abc123')).toThrow(expect.objectContaining({ code: 'E_INTEGRITY', message: expect.stringMatching(/restic tree abc123/) }));
    expect(() => decodeTree(Buffer.from(text), 'abc123')).toThrow(message);
  });
});

describe('snapshot files', () => {
  it('are written with restic field names and checked when read', () => {
    const s = newSnapshot({ tree: ID, paths: ['/files', '/db'], tags: ['sutazai'], timeNs: 1_700_000_000_123_456_789n, parent: 'b'.repeat(64) });
    expect(Object.keys(s).slice(0, 4)).toEqual(['time', 'parent', 'tree', 'paths']);
    expect(s.paths).toEqual(['/db', '/files']);
    expect(s.time).toMatch(/^2023-11-14T\d\d:13:20\.123456789/);
    expect(checkSnapshot(JSON.parse(JSON.stringify(s)), 'x')).toEqual(s);
    expect(() => checkSnapshot({ ...s, tree: 'nope' }, 'abc')).toThrow(/restic snapshot abc: no valid "tree" id/);
    expect(() => checkSnapshot({ ...s, time: 'today' }, 'abc')).toThrow(/not an RFC 3339 time/);
    expect(() => checkSnapshot({ ...s, tags: [1] }, 'abc')).toThrow(/"tags" is not a list of strings/);
  });
});

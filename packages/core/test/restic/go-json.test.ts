import { describe, expect, it } from 'vitest';
import { formatGoTime, goJsonString, goQuote, goUnquote, parseGoTime } from '../../src/restic/go-json.js';
import { GoMode, goFileMode, unixPermissions } from '../../src/restic/node.js';

describe('names as restic writes them', () => {
  // Both expectations are what restic 0.14 wrote into a tree for these file names.
  it('quotes control bytes, invalid UTF-8 and unprintable runes like strconv.Quote, then escapes like encoding/json', () => {
    const raw = Buffer.from('ctl\x01\x7f', 'latin1');
    const name = Buffer.concat([raw, Buffer.from([0xff]), Buffer.from('é\u2028\u00ad', 'utf8')]);
    expect(goJsonString(goQuote(name))).toBe('"ctl\\\\x01\\\\x7f\\\\xffé\\\\u2028\\\\u00ad"');
    expect(goJsonString(goQuote('we"ird\\name<&>'))).toBe('"we\\\\\\"ird\\\\\\\\name\\u003c\\u0026\\u003e"');
  });

  it('unquotes back to the same bytes, and refuses what Go would refuse', () => {
    const names = [Buffer.from([0x66, 0xff, 0x00, 0x0a]), Buffer.from('plain é 😀 \t"\\', 'utf8'), Buffer.from('\u00a0\u200b', 'utf8')];
    for (const name of names) expect(goUnquote(goQuote(name)).equals(name)).toBe(true);
    expect(goUnquote('a\\101\\u00e9')).toEqual(Buffer.from('aAé', 'utf8'));
    expect(() => goUnquote('a"b')).toThrow(/unescaped/);
    expect(() => goUnquote('a\\qb')).toThrow(/unknown escape/);
    expect(() => goUnquote('\\ud800')).toThrow(/invalid rune/);
    expect(() => goUnquote('trailing\\')).toThrow(/trailing/);
  });

  it('escapes HTML characters, line separators and lone surrogates like Go', () => {
    expect(goJsonString('<a href="x">&\u2029\b\u001f')).toBe('"\\u003ca href=\\"x\\"\\u003e\\u0026\\u2029\\u0008\\u001f"');
    expect(goJsonString('pair 😀 lone \ud800')).toBe('"pair 😀 lone \\ufffd"');
  });
});

describe('times as Go marshals them', () => {
  it('keeps nanoseconds without trailing zeros and names UTC as Z', () => {
    expect(formatGoTime(1796485543414143498n)).toBe('2026-12-05T15:45:43.414143498Z');
    expect(formatGoTime(1796485543400000000n)).toBe('2026-12-05T15:45:43.4Z');
    expect(formatGoTime(1796485543000000000n)).toBe('2026-12-05T15:45:43Z');
    expect(formatGoTime(-1n)).toBe('1969-12-31T23:59:59.999999999Z');
  });

  it('writes the local zone offset and parses it back to the same instant', () => {
    const before = process.env.TZ;
    process.env.TZ = 'Europe/Berlin';
    try {
      expect(formatGoTime(1796485543414143498n)).toBe('2026-12-05T16:45:43.414143498+01:00');
      expect(formatGoTime(1780000000000000000n)).toBe('2026-05-28T22:26:40+02:00');
      process.env.TZ = 'America/St_Johns';
      expect(formatGoTime(1796485543000000001n)).toBe('2026-12-05T12:15:43.000000001-03:30');
    } finally {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
    }
    expect(parseGoTime('2026-12-05T12:15:43.000000001-03:30')).toBe(parseGoTime('2026-12-05T15:45:43.000000001Z'));
    expect(parseGoTime('0001-01-01T00:00:00Z')).toBe(-62135596800n * 1_000_000_000n);
    expect(parseGoTime('2026-12-05T16:45:43.414143498+01:00')).toBe(1796485543414143498n);
    expect(() => parseGoTime('yesterday')).toThrow(/RFC 3339/);
  });
});

describe("Go's os.FileMode", () => {
  // Each value is what restic 0.14 stored for such an entry.
  it.each([
    ['folder 0755', 0o040755, 2147484141],
    ['sticky folder 1777', 0o041777, 2148532735],
    ['setuid file 4755', 0o104755, 8389101],
    ['file 0644', 0o100644, 420],
    ['symlink', 0o120777, 134218239],
    ['character device 0644', 0o020644, 69206436],
    ['FIFO 0644', 0o010644, 33554852],
  ])('%s', (_what, stMode, goMode) => {
    expect(goFileMode(stMode)).toBe(goMode);
    expect(unixPermissions(goMode)).toBe(stMode & 0o7777);
  });

  it('keeps the type bits apart from the permissions', () => {
    expect(unixPermissions(GoMode.dir + GoMode.setgid + 0o750)).toBe(0o2750);
  });
});

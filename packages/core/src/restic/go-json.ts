/**
 * The encodings restic's JSON gets from Go, reproduced so that a tree we write for a folder is
 * byte for byte the tree restic writes for it (same text, same id, shared blobs):
 * encoding/json's string escaping (HTML characters too), strconv.Quote for node names (restic
 * stores names quoted, so that any bytes survive), and time.Time's RFC 3339 text with
 * nanoseconds and the local zone.
 */

const hex = '0123456789abcdef';

/** A string as Go's encoding/json writes it (json.Marshal escapes <, >, & and U+2028/9 too). */
export function goJsonString(s: string): string {
  let out = '"';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c < 0x20 || c === 0x22 || c === 0x5c || c === 0x3c || c === 0x3e || c === 0x26) {
      esc = c === 0x22 ? '\\"' : c === 0x5c ? '\\\\' : c === 0x0a ? '\\n' : c === 0x0d ? '\\r' : c === 0x09 ? '\\t' : `\\u00${hex[c >> 4]}${hex[c & 15]}`;
    } else if (c === 0x2028 || c === 0x2029) {
      esc = `\\u${c.toString(16)}`;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      // Go writes invalid UTF-8 as U+FFFD; a lone surrogate is JavaScript's form of it.
      const pair = c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      if (pair) i++;
      else esc = '\\ufffd';
    }
    if (esc !== undefined) {
      out += s.slice(from, i) + esc;
      from = i + 1;
    }
  }
  return out + s.slice(from) + '"';
}

/** Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
const printable = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/**
 * Decodes the rune at `i` as Go's utf8.DecodeRune does, or returns width 0 for a byte that
 * starts no valid sequence (Go then reports RuneError with width 1).
 */
function decodeRune(b: Uint8Array, i: number): { rune: number; width: number } {
  const b0 = b[i]!;
  if (b0 < 0x80) return { rune: b0, width: 1 };
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (b0 >= 0xc2 && b0 <= 0xdf && cont(1)) return { rune: ((b0 & 0x1f) << 6) | (b[i + 1]! & 0x3f), width: 2 };
  if (b0 >= 0xe0 && b0 <= 0xef && cont(1) && cont(2)) {
    const r = ((b0 & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f);
    if (r >= 0x800 && (r < 0xd800 || r > 0xdfff)) return { rune: r, width: 3 };
  }
  if (b0 >= 0xf0 && b0 <= 0xf4 && cont(1) && cont(2) && cont(3)) {
    const r = ((b0 & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f);
    if (r >= 0x10000 && r <= 0x10ffff) return { rune: r, width: 4 };
  }
  return { rune: 0xfffd, width: 0 };
}

const shortEscapes: Record<number, string> = { 7: '\\a', 8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t', 11: '\\v' };

/** strconv.Quote without the surrounding quotes: how restic stores a name (raw bytes). */
export function goQuote(name: Uint8Array | string): string {
  const b = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  let out = '';
  for (let i = 0; i < b.length; ) {
    const { rune, width } = decodeRune(b, i);
    if (width === 0) {
      out += `\\x${hex[b[i]! >> 4]}${hex[b[i]! & 15]}`;
      i++;
      continue;
    }
    i += width;
    if (rune === 0x22 || rune === 0x5c) out += `\\${String.fromCharCode(rune)}`;
    else if (printable.test(String.fromCodePoint(rune))) out += String.fromCodePoint(rune);
    else if (shortEscapes[rune]) out += shortEscapes[rune];
    else if (rune < 0x20 || rune === 0x7f) out += `\\x${hex[rune >> 4]}${hex[rune & 15]}`;
    else if (rune < 0x10000) out += `\\u${rune.toString(16).padStart(4, '0')}`;
    else out += `\\U${rune.toString(16).padStart(8, '0')}`;
  }
  return out;
}

const unescapes: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 0x5c, '"': 0x22 };

/**
 * strconv.Unquote of a name restic stored: its raw bytes. Throws on text Go would refuse (a bare
 * quote or newline, an unknown escape), so a hand-made tree cannot smuggle a name past the checks.
 */
export function goUnquote(quoted: string): Buffer {
  const bytes: number[] = [];
  const pushRune = (r: number) => {
    if (r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) throw new Error(`invalid rune \\u${r.toString(16)}`);
    for (const byte of Buffer.from(String.fromCodePoint(r), 'utf8')) bytes.push(byte);
  };
  for (let i = 0; i < quoted.length; ) {
    const ch = quoted[i]!;
    if (ch === '"' || ch === '\n') throw new Error(`unescaped ${JSON.stringify(ch)}`);
    if (ch !== '\\') {
      const cp = quoted.codePointAt(i)!;
      pushRune(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = quoted[i + 1];
    if (e === undefined) throw new Error('a trailing backslash');
    const digits = (n: number, radix: number) => {
      const text = quoted.slice(i + 2, i + 2 + n);
      const re = radix === 16 ? /^[0-9a-fA-F]+$/ : /^[0-7]+$/;
      if (text.length !== n || !re.test(text)) throw new Error(`a bad escape \\${e}${text}`);
      return parseInt(text, radix);
    };
    if (unescapes[e] !== undefined) {
      bytes.push(unescapes[e]!);
      i += 2;
    } else if (e === 'x') {
      bytes.push(digits(2, 16));
      i += 4;
    } else if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      pushRune(digits(n, 16));
      i += 2 + n;
    } else if (e >= '0' && e <= '7') {
      const v = parseInt(quoted.slice(i + 1, i + 4), 8);
      if (!/^[0-7]{3}$/.test(quoted.slice(i + 1, i + 4)) || v > 255) throw new Error(`a bad escape \\${quoted.slice(i + 1, i + 4)}`);
      bytes.push(v);
      i += 4;
    } else {
      throw new Error(`an unknown escape \\${e}`);
    }
  }
  return Buffer.from(bytes);
}

const NS_PER_S = 1_000_000_000n;

/** Go's zero time, which restic writes for a missing timestamp. */
export const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

/**
 * Nanoseconds since the epoch as Go's time.Time marshals in the local zone (restic's): RFC 3339
 * with the fraction's trailing zeros dropped, `Z` for UTC, else the offset. Years are clamped to
 * 0000-9999 like restic's FixTime.
 */
export function formatGoTime(ns: bigint): string {
  let seconds = ns / NS_PER_S;
  let frac = ns % NS_PER_S;
  if (frac < 0n) {
    frac += NS_PER_S;
    seconds -= 1n;
  }
  const ms = Number(seconds) * 1000;
  const offsetMin = -new Date(ms).getTimezoneOffset();
  const local = new Date(ms + offsetMin * 60_000);
  let year = local.getUTCFullYear();
  if (year < 0) year = 0;
  if (year > 9999) year = 9999;
  const two = (n: number) => String(n).padStart(2, '0');
  let text = `${String(year).padStart(4, '0')}-${two(local.getUTCMonth() + 1)}-${two(local.getUTCDate())}T${two(local.getUTCHours())}:${two(local.getUTCMinutes())}:${two(local.getUTCSeconds())}`;
  if (frac) text += `.${frac.toString().padStart(9, '0').replace(/0+$/, '')}`;
  if (offsetMin === 0) return `${text}Z`;
  const abs = Math.abs(offsetMin);
  return `${text}${offsetMin < 0 ? '-' : '+'}${two(Math.floor(abs / 60))}:${two(abs % 60)}`;
}

const timePattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time (as restic writes them) as nanoseconds since the epoch. */
export function parseGoTime(text: string): bigint {
  const m = timePattern.exec(text);
  if (!m) throw new Error(`not an RFC 3339 time: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  let seconds = BigInt(Math.floor(date.getTime() / 1000));
  if (zone !== 'Z') {
    const sign = zone![0] === '-' ? -1n : 1n;
    seconds -= sign * BigInt(Number(zone!.slice(1, 3)) * 3600 + Number(zone!.slice(4, 6)) * 60);
  }
  return seconds * NS_PER_S + BigInt((frac ?? '').padEnd(9, '0') || '0');
}

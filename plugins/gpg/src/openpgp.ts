import { createDecipheriv, createHash, randomBytes, timingSafeEqual, type Hash } from 'node:crypto';
import type { ChunkDecoder, ChunkEncoder } from '@sutazai/backup-core';
import { cfbStage, type CfbBackend, type CfbStage } from './cfb.js';
import { loadAddon } from './native.js';
// The error class from its own module: a verifying thread loads this file, and the whole core
// (config, schemas) would cost it ~0.2 s.
import { BackupError } from '@sutazai/backup-core/errors';

/**
 * OpenPGP passphrase encryption in-process (RFC 4880; RFC 9580's version 1 packets): the message
 * stock `gpg --symmetric --compress-algo none` writes, and that `gpg --decrypt` reads.
 *
 *   SKESK v4 (tag 3): AES-256, iterated and salted S2K (SHA-256, 65011712 octets), no session key
 *   SEIPD v1 (tag 18): AES-256 in OpenPGP CFB (zero IV, no resync) over
 *     18 random octets (the last two repeated: the quick check of the key)
 *     Literal Data (tag 11): binary, no file name, date 0, the data
 *     MDC (tag 19): SHA-1 of everything before it, integrity protection
 *
 * Packets of unknown length use partial body lengths, so the message is written as it streams.
 * The primitives are OpenSSL's (AES with the CPU's instructions, SHA-1, SHA-256): no gpg process,
 * no pipe to it and back, and no gpg needed on the host for passphrase encryption.
 * The decoder also reads what gpg 2.2 writes for a passphrase (what this plugin wrote before it
 * encrypted in-process): SKESK v4 with any of the S2K kinds and an optional encrypted session
 * key, AES-128/192/256, old or new packet headers.
 */

const TAG = { PKESK: 1, SKESK: 3, SED: 9, COMPRESSED: 8, MARKER: 10, LITERAL: 11, SEIPD: 18, MDC: 19, AEAD: 20 } as const;

const CIPHERS: Record<number, { name: string; keyLength: number }> = {
  7: { name: 'aes-128-cfb', keyLength: 16 },
  8: { name: 'aes-192-cfb', keyLength: 24 },
  9: { name: 'aes-256-cfb', keyLength: 32 },
};
const AES256 = 9;
const BLOCK = 16;

const HASHES: Record<number, string> = { 2: 'sha1', 8: 'sha256', 9: 'sha384', 10: 'sha512', 11: 'sha224' };
const SHA256 = 8;

/** The S2K count octet of the largest count, 65011712: about as slow as gpg's own default. */
export const S2K_COUNT_OCTET = 0xff;

export function s2kCount(octet: number): number {
  return (16 + (octet & 15)) << ((octet >> 4) + 6);
}

export interface S2kSpec {
  type: 0 | 1 | 3;
  hash: number;
  salt: Buffer;
  count: number;
}

/** Derived keys, per passphrase (the same Buffer) and S2K parameters: a run's verify reuses its archive's. */
const keyCache = new WeakMap<Buffer, Map<string, Buffer>>();

/** What `keyCache` files a derived key under: everything the key depends on but the passphrase. */
function keyId(s2k: S2kSpec, keyLength: number): string {
  return `${s2k.type}:${s2k.hash}:${s2k.salt.toString('hex')}:${s2k.count}:${keyLength}`;
}

/** The key of a passphrase by an S2K specifier (RFC 4880 3.7.1), for a cipher of `keyLength` octets. */
export function deriveKey(passphrase: Buffer, s2k: S2kSpec, keyLength: number): Buffer {
  const id = keyId(s2k, keyLength);
  let cache = keyCache.get(passphrase);
  const cached = cache?.get(id);
  if (cached) return cached;
  const algorithm = HASHES[s2k.hash];
  if (!algorithm) throw new Error(`unsupported S2K hash algorithm ${s2k.hash}`);
  const data = s2k.type === 0 ? passphrase : Buffer.concat([s2k.salt, passphrase]);
  const parts: Buffer[] = [];
  let length = 0;
  // Several hash contexts when the key is longer than the hash: the i-th is preloaded with i zero octets.
  for (let i = 0; length < keyLength; i++) {
    const hash = createHash(algorithm);
    if (i) hash.update(Buffer.alloc(i));
    if (s2k.type === 3 && s2k.count > data.length) hashRepeated(hash, data, s2k.count);
    else hash.update(data);
    const digest = hash.digest();
    parts.push(digest);
    length += digest.length;
  }
  const key = Buffer.concat(parts).subarray(0, keyLength);
  if (!cache) keyCache.set(passphrase, (cache = new Map()));
  cache.set(id, key);
  return key;
}

const pending = new WeakMap<Buffer, Map<string, Promise<Buffer>>>();

/**
 * `deriveKey`, off the main thread when the addon can (iterated and salted, SHA-256, a key of at
 * most 32 octets: the manifest MAC's key): the run keeps archiving while it is derived. Cached
 * with `deriveKey`'s results; calls with the same arguments share one derivation.
 */
export function deriveKeyAsync(passphrase: Buffer, s2k: S2kSpec, keyLength: number): Promise<Buffer> {
  const id = keyId(s2k, keyLength);
  const cached = keyCache.get(passphrase)?.get(id);
  if (cached) return Promise.resolve(cached);
  const inFlight = pending.get(passphrase)?.get(id);
  if (inFlight) return inFlight;
  const native = loadAddon();
  if (!native || s2k.type !== 3 || s2k.hash !== SHA256 || keyLength > 32) {
    try {
      return Promise.resolve(deriveKey(passphrase, s2k, keyLength));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  const promise = native.s2kSha256(Buffer.concat([s2k.salt, passphrase]), s2k.count).then((digest) => {
    const key = digest.subarray(0, keyLength);
    let cache = keyCache.get(passphrase);
    if (!cache) keyCache.set(passphrase, (cache = new Map()));
    cache.set(id, key);
    return key;
  });
  let map = pending.get(passphrase);
  if (!map) pending.set(passphrase, (map = new Map()));
  map.set(id, promise);
  void promise.finally(() => map!.delete(id)).catch(() => undefined);
  return promise;
}

/** Hashes `count` octets of `data` repeated, in large pieces. */
function hashRepeated(hash: Hash, data: Buffer, count: number): void {
  const times = Math.max(1, Math.floor((64 * 1024) / data.length));
  const block = Buffer.alloc(data.length * times);
  for (let i = 0; i < times; i++) data.copy(block, i * data.length);
  let left = count;
  while (left >= block.length) {
    hash.update(block);
    left -= block.length;
  }
  if (left) hash.update(block.subarray(0, left));
}

/** A new-format packet length of `n` octets (definite). */
function lengthOctets(n: number): Buffer {
  if (n < 192) return Buffer.of(n);
  if (n < 8384) return Buffer.of(((n - 192) >> 8) + 192, (n - 192) & 0xff);
  const b = Buffer.alloc(5);
  b[0] = 0xff;
  b.writeUInt32BE(n, 1);
  return b;
}

const MIN_PARTIAL = 512;
const MAX_PARTIAL_EXPONENT = 30;

/** The exponent of the largest partial body length that fits in `available` octets (2^exponent, at most 2^30). */
function partExponent(available: number): number {
  return Math.min(MAX_PARTIAL_EXPONENT, 31 - Math.clz32(available));
}

/**
 * The body of a packet whose length is not known in advance: partial body lengths (each a power
 * of two, the first at least 512 octets) for what is available, a definite length for the rest.
 */
class PartialBody {
  #held: Buffer[] = [];
  #heldLength = 0;

  /** Appends the framed pieces of every whole part now available to `out`; keeps a copy of the rest. */
  push(data: Buffer, out: Buffer[]): void {
    let available = this.#heldLength + data.length;
    if (available < MIN_PARTIAL) {
      if (data.length) this.#hold(Buffer.from(data));
      return;
    }
    let offset = 0;
    while (available >= MIN_PARTIAL) {
      const exponent = partExponent(available);
      let need = 2 ** exponent;
      out.push(Buffer.of(224 + exponent));
      available -= need;
      while (need && this.#held.length) {
        const first = this.#held[0]!;
        if (first.length <= need) {
          out.push(first);
          need -= first.length;
          this.#heldLength -= first.length;
          this.#held.shift();
        } else {
          out.push(first.subarray(0, need));
          this.#held[0] = first.subarray(need);
          this.#heldLength -= need;
          need = 0;
        }
      }
      if (need) {
        out.push(data.subarray(offset, offset + need));
        offset += need;
      }
    }
    if (offset < data.length) this.#hold(Buffer.from(data.subarray(offset)));
  }

  /** The last part, with a definite length (possibly zero). */
  end(out: Buffer[]): void {
    out.push(lengthOctets(this.#heldLength), ...this.#held);
    this.#held = [];
    this.#heldLength = 0;
  }

  #hold(data: Buffer): void {
    this.#held.push(data);
    this.#heldLength += data.length;
  }
}

/** The smallest partial part of the encrypted packet: fewer headers; less is carried to the next call. */
const SEIPD_PART = 64 * 1024;

/** Encrypts a stream of bytes into an OpenPGP message for a passphrase (see the top of this file). */
export class OpenPgpEncryptor implements ChunkEncoder {
  readonly #cipher: CfbStage;
  readonly #mdc: Hash = createHash('sha1');
  readonly #literal = new PartialBody();
  /**
   * The encrypted packet's body not framed yet: what the last call carried over (less than a
   * part), then this call's ciphertext. Reused from call to call.
   */
  #body = Buffer.allocUnsafeSlow(SEIPD_PART * 2);
  #carried = 0;
  #head: Buffer | undefined;
  #plainHead: Buffer | undefined;
  #ended = false;
  readonly #free: Buffer[] = [];

  constructor(passphrase: Buffer, options: { countOctet?: number; backend?: CfbBackend } = {}) {
    const countOctet = options.countOctet ?? S2K_COUNT_OCTET;
    const salt = randomBytes(8);
    const key = deriveKey(passphrase, { type: 3, hash: SHA256, salt, count: s2kCount(countOctet) }, 32);
    this.#cipher = cfbStage(CIPHERS[AES256]!.name, key, false, options.backend);
    // SKESK v4: version, cipher, S2K (iterated and salted: type, hash, salt, count); no session key.
    const skesk = Buffer.concat([Buffer.of(4, AES256, 3, SHA256), salt, Buffer.of(countOctet)]);
    this.#head = Buffer.concat([Buffer.of(0xc0 | TAG.SKESK), lengthOctets(skesk.length), skesk, Buffer.of(0xc0 | TAG.SEIPD)]);
    const prefix = randomBytes(BLOCK + 2);
    prefix[BLOCK] = prefix[BLOCK - 2]!;
    prefix[BLOCK + 1] = prefix[BLOCK - 1]!;
    // The literal packet's header, then its body's own header: binary, no file name, date 0.
    this.#plainHead = Buffer.concat([prefix, Buffer.of(0xc0 | TAG.LITERAL)]);
    // The SEIPD body starts with its version, 1, before the ciphertext.
    this.#body[0] = 1;
    this.#carried = 1;
  }

  update(data: Buffer): Buffer {
    if (this.#ended) throw new Error('OpenPgpEncryptor: update after final');
    const plain: Buffer[] = [];
    this.#begin(plain);
    this.#literal.push(data, plain);
    const end = this.#encrypt(plain);
    const out: Buffer[] = [];
    const framed = this.#frame(end, out);
    const output = this.#join(out);
    // What was not framed moves to the start of the body, now that the output holds the rest.
    this.#body.copyWithin(0, framed, end);
    this.#carried = end - framed;
    return output;
  }

  final(): Buffer {
    if (this.#ended) throw new Error('OpenPgpEncryptor: final twice');
    this.#ended = true;
    const plain: Buffer[] = [];
    this.#begin(plain);
    this.#literal.end(plain);
    plain.push(Buffer.of(0xc0 | TAG.MDC, 20));
    let end = this.#encrypt(plain);
    // The MDC's value itself is encrypted, not hashed.
    end = this.#encrypt([this.#mdc.digest()], end, false);
    const out: Buffer[] = [];
    const framed = this.#frame(end, out);
    const last = this.#body.subarray(framed, end);
    out.push(lengthOctets(last.length), last);
    return this.#join(out);
  }

  /** The first plaintext, once: the random prefix, the literal packet's tag, its body's header. */
  #begin(plain: Buffer[]): void {
    if (!this.#plainHead) return;
    plain.push(this.#plainHead);
    this.#plainHead = undefined;
    this.#literal.push(Buffer.of(0x62, 0, 0, 0, 0, 0), plain);
  }

  /** Hashes (for the MDC) and encrypts `plain` into the body after `start`; returns where it ends. */
  #encrypt(plain: Buffer[], start = this.#carried, hash = true): number {
    const length = plain.reduce((n, b) => n + b.length, 0);
    if (start + length > this.#body.length) {
      const grown = Buffer.allocUnsafeSlow(Math.ceil((start + length) / SEIPD_PART) * SEIPD_PART);
      this.#body.copy(grown, 0, 0, start);
      this.#body = grown;
    }
    let position = start;
    for (const piece of plain) {
      if (hash) this.#mdc.update(piece);
      this.#cipher.update(piece, this.#body.subarray(position, position + piece.length));
      position += piece.length;
    }
    return position;
  }

  /**
   * Frames the body up to `end` in partial parts (powers of two, at least SEIPD_PART) into `out`;
   * returns where the rest (less than a part) starts.
   */
  #frame(end: number, out: Buffer[]): number {
    let position = 0;
    while (end - position >= SEIPD_PART) {
      const exponent = partExponent(end - position);
      out.push(Buffer.of(224 + exponent), this.#body.subarray(position, position + 2 ** exponent));
      position += 2 ** exponent;
    }
    return position;
  }

  /** The pieces in one output buffer, from a small pool the writer returns them to (`release`). */
  #join(out: Buffer[]): Buffer {
    if (this.#head) {
      out.unshift(this.#head);
      this.#head = undefined;
    }
    const length = out.reduce((n, b) => n + b.length, 0);
    const index = this.#free.findIndex((b) => b.length >= length);
    // Rounded up so that a returned buffer fits the next output (framing varies by a few bytes);
    // not larger, for the stream form, which never returns them.
    const buffer = index >= 0 ? this.#free.splice(index, 1)[0]! : Buffer.allocUnsafeSlow(Math.ceil((length + 1) / 65536) * 65536);
    let position = 0;
    for (const piece of out) position += piece.copy(buffer, position);
    return buffer.subarray(0, length);
  }

  /** Takes back an output buffer once it is written. */
  release(output: Buffer): void {
    if (this.#free.length < 4) this.#free.push(Buffer.from(output.buffer, output.byteOffset, output.buffer.byteLength - output.byteOffset));
  }
}

interface PacketEvents {
  /** A packet begins; `length` is undefined when unknown (partial or indeterminate). */
  start(tag: number, length: number | undefined): void;
  body(data: Buffer): void;
  end(tag: number): void;
}

/** The packet header reader: tag and length octets, partial lengths, old and new formats. */
class PacketReader {
  #state: 'tag' | 'length' | 'partial' | 'body' = 'tag';
  #octets: number[] = [];
  #oldLength = 0;
  #tag = 0;
  #remaining = 0;
  #partial = false;
  #indeterminate = false;
  readonly #on: PacketEvents;

  constructor(on: PacketEvents) {
    this.#on = on;
  }

  push(data: Buffer): void {
    let i = 0;
    while (i < data.length) {
      if (this.#state === 'body') {
        const n = Math.min(this.#remaining, data.length - i);
        this.#on.body(data.subarray(i, i + n));
        i += n;
        if (!this.#indeterminate) this.#remaining -= n;
        if (this.#remaining === 0) this.#endPart();
        continue;
      }
      const octet = data[i++]!;
      if (this.#state === 'tag') {
        if ((octet & 0x80) === 0) throw new Error(`not an OpenPGP packet header (0x${octet.toString(16)})`);
        this.#octets = [];
        if (octet & 0x40) {
          this.#tag = octet & 0x3f;
          this.#oldLength = 0;
        } else {
          this.#tag = (octet >> 2) & 0x0f;
          const kind = octet & 3;
          if (kind === 3) {
            this.#indeterminate = true;
            this.#partial = false;
            this.#remaining = Infinity;
            this.#state = 'body';
            this.#on.start(this.#tag, undefined);
            continue;
          }
          this.#oldLength = [1, 2, 4][kind]!;
        }
        this.#state = 'length';
        continue;
      }
      this.#octets.push(octet);
      const length = this.#length();
      if (length === undefined) continue;
      const starting = this.#state === 'length';
      this.#remaining = length.length;
      this.#partial = length.partial;
      this.#indeterminate = false;
      if (starting) this.#on.start(this.#tag, length.partial ? undefined : length.length);
      this.#state = 'body';
      if (this.#remaining === 0) this.#endPart();
    }
  }

  /** The input ended: fine only between packets, or in a packet of indeterminate length. */
  finish(): boolean {
    if (this.#state === 'body' && this.#indeterminate) {
      this.#state = 'tag';
      this.#indeterminate = false;
      this.#on.end(this.#tag);
    }
    return this.#state === 'tag';
  }

  #endPart(): void {
    if (this.#partial) {
      this.#octets = [];
      this.#state = 'partial';
      return;
    }
    this.#state = 'tag';
    this.#on.end(this.#tag);
  }

  /** The length the collected octets spell, or undefined while more are needed. */
  #length(): { length: number; partial: boolean } | undefined {
    const o = this.#octets;
    if (this.#oldLength) {
      if (o.length < this.#oldLength) return undefined;
      return { length: o.reduce((n, b) => n * 256 + b, 0), partial: false };
    }
    const first = o[0]!;
    if (first < 192) return { length: first, partial: false };
    if (first < 224) return o.length < 2 ? undefined : { length: ((first - 192) << 8) + o[1]! + 192, partial: false };
    if (first < 255) return { length: 2 ** (first & 0x1f), partial: true };
    return o.length < 5 ? undefined : { length: o[1]! * 2 ** 24 + ((o[2]! << 16) | (o[3]! << 8) | o[4]!), partial: false };
  }
}

/** Collects a small number of octets that may arrive in pieces. */
class Gather {
  readonly #want: number;
  #parts: Buffer[] = [];
  #have = 0;

  constructor(want: number) {
    this.#want = want;
  }

  get done(): boolean {
    return this.#have >= this.#want;
  }

  /** Takes what it still needs from `data`; returns the rest of `data`. */
  take(data: Buffer): Buffer {
    const n = Math.min(this.#want - this.#have, data.length);
    if (n) {
      this.#parts.push(Buffer.from(data.subarray(0, n)));
      this.#have += n;
    }
    return data.subarray(n);
  }

  get value(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

/**
 * Decrypts an OpenPGP message made with a passphrase, as it streams (see the top of this file).
 * The decrypted data is handed on before the integrity check at the end (like `gpg --decrypt`):
 * `end()` throws unless the MDC matched, so data counts only once `end()` returned.
 */
export class OpenPgpDecryptor implements ChunkDecoder {
  readonly #passphrase: Buffer;
  readonly #label: string;
  readonly #outer: PacketReader;
  /** Keys from the SKESK packets (normally one). */
  readonly #keys: { cipher: number; key: Buffer }[] = [];
  #publicKeyPackets = 0;
  #skesk: Buffer[] | undefined;
  #seipdVersion: Gather | undefined;
  #cipherPrefix: Gather | undefined;
  #decipher: CfbStage | undefined;
  /** Decrypted octets, handed on before the next call overwrites them (ChunkDecoder's contract). */
  #decrypted: Buffer | undefined;
  readonly #backend: CfbBackend | undefined;
  #seipdDone = false;
  // The decrypted stream.
  readonly #mdc: Hash = createHash('sha1');
  /** The last 20 decrypted octets, not hashed yet: the MDC value, once everything is read. */
  #tail = Buffer.alloc(0);
  readonly #inner: PacketReader;
  #literalHeader: Gather | undefined;
  #literalHeaderNameLength = -1;
  #literalDone = false;
  #mdcSeen = false;
  #mdcDone = false;
  #onData: ((data: Buffer) => void) | undefined;
  /** The outer packet being read. */
  #tagOpen = 0;

  constructor(passphrase: Buffer, label: string, options: { backend?: CfbBackend } = {}) {
    this.#passphrase = passphrase;
    this.#label = label;
    this.#backend = options.backend;
    this.#outer = new PacketReader({
      start: (tag) => this.#outerStart(tag),
      body: (data) => this.#outerBody(data),
      end: (tag) => this.#outerEnd(tag),
    });
    this.#inner = new PacketReader({
      start: (tag, length) => this.#innerStart(tag, length),
      body: (data) => this.#innerBody(data),
      end: (tag) => this.#innerEnd(tag),
    });
  }

  update(chunk: Buffer, onData: (data: Buffer) => void): void {
    this.#onData = onData;
    try {
      this.#outer.push(chunk);
    } catch (err) {
      throw this.#error(err);
    } finally {
      this.#onData = undefined;
    }
  }

  end(): void {
    try {
      if (!this.#outer.finish() || !this.#seipdDone) throw integrity('it ends before the encrypted data does: truncated');
      if (!this.#mdcDone || !this.#inner.finish()) throw integrity('the encrypted data ends before its integrity check (MDC): truncated or altered');
      const expected = this.#mdc.digest();
      if (this.#tail.length !== 20 || !timingSafeEqual(expected, this.#tail)) {
        throw integrity('the integrity check (MDC) failed: the encrypted data was altered');
      }
    } catch (err) {
      throw this.#error(err);
    }
  }

  #error(err: unknown): BackupError {
    if (err instanceof BackupError) return err;
    if (err instanceof Refusal) return new BackupError(err.code, `${this.#label}: ${err.message}`);
    return new BackupError('E_INTEGRITY', `${this.#label}: cannot be decrypted: ${(err as Error).message}`, { cause: err });
  }

  // ---- the outer packets -------------------------------------------------------------------

  #outerStart(tag: number): void {
    this.#tagOpen = tag;
    if (this.#seipdDone) throw integrity('data follows the encrypted packet: altered');
    switch (tag) {
      case TAG.SKESK:
        this.#skesk = [];
        return;
      case TAG.PKESK:
        this.#publicKeyPackets++;
        return;
      case TAG.MARKER:
        return;
      case TAG.SEIPD:
        if (this.#keys.length === 0) {
          throw new Refusal(
            'E_CONFIG',
            this.#publicKeyPackets
              ? 'cannot decrypt: it is encrypted to public keys, not with a passphrase (set encryption.recipients and privateKey)'
              : 'cannot decrypt: no passphrase packet before the encrypted data',
          );
        }
        this.#seipdVersion = new Gather(1);
        this.#cipherPrefix = new Gather(BLOCK + 2);
        return;
      case TAG.SED:
        throw new Refusal('E_INTEGRITY', 'the encrypted data is not integrity protected (no MDC): refused');
      case TAG.AEAD:
        throw new Refusal('E_ARCHIVE', 'AEAD-encrypted OpenPGP data (gpg 2.3 and later) is not supported: decrypt it with `gpg --decrypt`');
      case TAG.LITERAL:
      case TAG.COMPRESSED:
        throw new Refusal('E_INTEGRITY', 'it is not encrypted: refused');
      default:
        throw new Error(`unexpected OpenPGP packet (tag ${tag})`);
    }
  }

  #outerBody(data: Buffer): void {
    switch (this.#tagOpen) {
      case TAG.SKESK:
        if (this.#skesk!.reduce((n, b) => n + b.length, 0) + data.length > 1024) throw new Error('a passphrase packet (SKESK) larger than 1 KiB');
        this.#skesk!.push(Buffer.from(data));
        return;
      case TAG.SEIPD:
        this.#seipdBody(data);
        return;
      default:
        return;
    }
  }

  #outerEnd(tag: number): void {
    if (tag === TAG.SKESK) {
      this.#keys.push(this.#sessionKey(Buffer.concat(this.#skesk!)));
      this.#skesk = undefined;
    } else if (tag === TAG.SEIPD) {
      if (!this.#decipher) throw integrity('the encrypted data is too short: truncated');
      this.#seipdDone = true;
    }
  }

  /** The session key of a SKESK packet: the S2K's key, or the key it decrypts. */
  #sessionKey(body: Buffer): { cipher: number; key: Buffer } {
    if (body[0] !== 4) throw new Error(`unsupported passphrase packet (SKESK version ${body[0]})`);
    const cipher = body[1]!;
    const spec = CIPHERS[cipher];
    if (!spec) throw new Error(`unsupported cipher algorithm ${cipher}`);
    const type = body[2]!;
    let s2k: S2kSpec;
    let offset: number;
    if (type === 0) {
      s2k = { type: 0, hash: body[3]!, salt: Buffer.alloc(0), count: 0 };
      offset = 4;
    } else if (type === 1) {
      s2k = { type: 1, hash: body[3]!, salt: body.subarray(4, 12), count: 0 };
      offset = 12;
    } else if (type === 3) {
      s2k = { type: 3, hash: body[3]!, salt: body.subarray(4, 12), count: s2kCount(body[12]!) };
      offset = 13;
    } else {
      throw new Error(`unsupported S2K type ${type}`);
    }
    if (body.length < offset) throw new Error('a truncated passphrase packet (SKESK)');
    const key = deriveKey(this.#passphrase, s2k, spec.keyLength);
    const encrypted = body.subarray(offset);
    if (encrypted.length === 0) return { cipher, key };
    // An encrypted session key: its algorithm octet, then the key.
    const decipher = createDecipheriv(spec.name, key, Buffer.alloc(BLOCK));
    const plain = Buffer.concat([decipher.update(encrypted), decipher.final()]);
    const inner = CIPHERS[plain[0]!];
    if (!inner || plain.length - 1 !== inner.keyLength) throw new Refusal('E_CONFIG', 'cannot decrypt: wrong passphrase (encryption.passphrase)');
    return { cipher: plain[0]!, key: plain.subarray(1) };
  }

  #seipdBody(data: Buffer): void {
    if (!this.#seipdVersion!.done) {
      data = this.#seipdVersion!.take(data);
      if (!this.#seipdVersion!.done) return;
      const version = this.#seipdVersion!.value[0];
      if (version !== 1) throw new Refusal('E_ARCHIVE', `OpenPGP encrypted data of version ${version} is not supported: decrypt it with \`gpg --decrypt\``);
    }
    if (!this.#decipher) {
      data = this.#cipherPrefix!.take(data);
      if (!this.#cipherPrefix!.done) return;
      this.#chooseKey(this.#cipherPrefix!.value);
    }
    this.#decrypted ??= Buffer.allocUnsafeSlow(DECRYPT_STEP);
    for (let offset = 0; offset < data.length; offset += DECRYPT_STEP) {
      const piece = data.subarray(offset, offset + DECRYPT_STEP);
      const plain = this.#decrypted.subarray(0, piece.length);
      this.#decipher!.update(piece, plain);
      this.#plain(plain);
    }
  }

  /** Finds the key whose decryption of the prefix passes the quick check, and starts decrypting. */
  #chooseKey(prefixCipher: Buffer): void {
    for (const { cipher, key } of this.#keys) {
      const decipher = cfbStage(CIPHERS[cipher]!.name, key, true, this.#backend);
      const prefix = Buffer.alloc(prefixCipher.length);
      decipher.update(prefixCipher, prefix);
      if (prefix[BLOCK] === prefix[BLOCK - 2] && prefix[BLOCK + 1] === prefix[BLOCK - 1]) {
        this.#decipher = decipher;
        this.#mdc.update(prefix);
        return;
      }
    }
    throw new Refusal('E_CONFIG', 'cannot decrypt: wrong passphrase (encryption.passphrase)');
  }

  // ---- the decrypted stream ----------------------------------------------------------------

  /** Decrypted octets: hashed for the MDC (all but the last 20, which may be its value), then parsed. */
  #plain(data: Buffer): void {
    if (data.length >= 20) {
      if (this.#tail.length) this.#mdc.update(this.#tail);
      this.#mdc.update(data.subarray(0, data.length - 20));
      this.#tail = Buffer.from(data.subarray(data.length - 20));
    } else {
      const joined = Buffer.concat([this.#tail, data]);
      const keep = Math.min(20, joined.length);
      if (joined.length > keep) this.#mdc.update(joined.subarray(0, joined.length - keep));
      this.#tail = joined.subarray(joined.length - keep);
    }
    this.#inner.push(data);
  }

  #innerStart(tag: number, length: number | undefined): void {
    if (this.#mdcSeen) throw integrity('data follows the integrity check (MDC): altered');
    if (tag === TAG.LITERAL) {
      if (this.#literalDone) throw new Error('more than one literal data packet');
      this.#literalHeader = new Gather(2);
      this.#literalHeaderNameLength = -1;
      return;
    }
    if (tag === TAG.MDC) {
      if (!this.#literalDone) throw integrity('the integrity check (MDC) comes before the data: altered');
      if (length !== 20) throw integrity('a malformed integrity check (MDC) packet: altered');
      this.#mdcSeen = true;
      return;
    }
    if (tag === TAG.MARKER) return;
    if (tag === TAG.COMPRESSED) {
      throw new Refusal('E_ARCHIVE', 'the encrypted data holds an OpenPGP compressed packet, which this tool does not write: decrypt it with `gpg --decrypt`');
    }
    throw new Error(`unexpected OpenPGP packet inside the encrypted data (tag ${tag})`);
  }

  #innerBody(data: Buffer): void {
    if (this.#mdcSeen) return; // its value: kept in #tail, checked at the end
    if (this.#literalDone) return;
    const header = this.#literalHeader;
    if (header) {
      data = header.take(data);
      if (!header.done) return;
      if (this.#literalHeaderNameLength < 0) {
        // format, name length; then the name and a 4-octet date.
        this.#literalHeaderNameLength = header.value[1]!;
        this.#literalHeader = new Gather(this.#literalHeaderNameLength + 4);
        this.#innerBody(data);
        return;
      }
      this.#literalHeader = undefined;
    }
    if (data.length) this.#onData!(data);
  }

  #innerEnd(tag: number): void {
    if (tag === TAG.LITERAL) {
      if (this.#literalHeader) throw integrity('a truncated literal data packet: altered');
      this.#literalDone = true;
    } else if (tag === TAG.MDC) {
      this.#mdcDone = true;
    }
  }
}

/** How much is decrypted at a time into the decryptor's reused buffer. */
const DECRYPT_STEP = 256 * 1024;

/** An error whose code and message are given as they are (prefixed with the artifact's name). */
class Refusal extends Error {
  readonly code: 'E_CONFIG' | 'E_INTEGRITY' | 'E_ARCHIVE';
  constructor(code: Refusal['code'], message: string) {
    super(message);
    this.code = code;
  }
}

function integrity(message: string): Refusal {
  return new Refusal('E_INTEGRITY', message);
}

/** The decryptor a verifying thread builds (core's ThreadDecoderSpec): the passphrase travels as bytes. */
export function createThreadDecoder(data: { passphrase: Uint8Array; label: string }): OpenPgpDecryptor {
  return new OpenPgpDecryptor(Buffer.from(data.passphrase), data.label);
}

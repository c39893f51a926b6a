import { randomBytes } from 'node:crypto';
import { BackupError } from '../errors.js';

/**
 * The chunker polynomial of a repository's config: a random irreducible polynomial of degree 53
 * over GF(2), bit i the coefficient of x^i, as restic's chunker picks it (so that chunk
 * boundaries cannot be predicted by someone who lacks the key). restic refuses a config whose
 * polynomial is reducible, so we check ours before writing one. BigInt is slow but this runs once
 * per repository.
 */

const DEGREE = 53;
const MAX_TRIES = 1_000_000;

export function degree(x: bigint): number {
  return x === 0n ? -1 : x.toString(2).length - 1;
}

export function mod(x: bigint, m: bigint): bigint {
  const dm = degree(m);
  for (let d = degree(x); d >= dm; d = degree(x)) x ^= m << BigInt(d - dm);
  return x;
}

function mulMod(a: bigint, b: bigint, m: bigint): bigint {
  let product = 0n;
  for (let i = 0; b >> BigInt(i) !== 0n; i++) {
    if ((b >> BigInt(i)) & 1n) product ^= a << BigInt(i);
  }
  return mod(product, m);
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, mod(a, b)];
  return a;
}

/** Ben-Or's test: f is irreducible when gcd(f, x^(2^i) - x mod f) = 1 for every i ≤ deg(f)/2. */
export function isIrreducible(f: bigint): boolean {
  const half = Math.floor(degree(f) / 2);
  let power = 2n; // x, squared once per step: x^(2^i)
  for (let i = 1; i <= half; i++) {
    power = mulMod(power, power, f);
    if (gcd(f, mod(power ^ 2n, f)) !== 1n) return false;
  }
  return degree(f) >= 1;
}

/** A random irreducible polynomial of degree 53, as the lower-case hex restic's config holds. */
export function randomPolynomial(): string {
  for (let i = 0; i < MAX_TRIES; i++) {
    let f = randomBytes(8).readBigUInt64LE() & ((1n << BigInt(DEGREE + 1)) - 1n);
    f |= (1n << BigInt(DEGREE)) | 1n;
    if (isIrreducible(f)) return f.toString(16);
  }
  throw new BackupError('E_INTERNAL', 'no irreducible chunker polynomial found');
}

/** Parses a config's `chunker_polynomial`; undefined unless it is hex for an irreducible polynomial. */
export function parsePolynomial(hex: unknown): bigint | undefined {
  if (typeof hex !== 'string' || !/^[0-9a-f]{1,16}$/i.test(hex)) return undefined;
  const f = BigInt(`0x${hex}`);
  return isIrreducible(f) ? f : undefined;
}

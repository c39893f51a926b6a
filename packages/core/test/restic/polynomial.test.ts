import { describe, expect, it } from 'vitest';
import { isIrreducible, parsePolynomial, randomPolynomial } from '../../src/restic/polynomial.js';

describe('chunker polynomial', () => {
  it('accepts the irreducible polynomials restic uses and refuses products', () => {
    // restic's chunker default test polynomial, and one `restic init` wrote here.
    expect(isIrreducible(0x3da3358b4dc173n)).toBe(true);
    expect(isIrreducible(0x29aa7c68549f9bn)).toBe(true);
    // (x^2 + x + 1) · (x^3 + x + 1) = x^5 + x^4 + 1 over GF(2)
    expect(isIrreducible(0b110001n)).toBe(false);
    expect(isIrreducible(0x3da3358b4dc173n * 2n)).toBe(false);
  });

  it('draws random degree-53 irreducible polynomials', () => {
    const a = randomPolynomial();
    const b = randomPolynomial();
    expect(a).not.toBe(b);
    for (const p of [a, b]) {
      expect(BigInt(`0x${p}`).toString(2)).toHaveLength(54);
      expect(parsePolynomial(p)).toBeDefined();
    }
    expect(parsePolynomial('not hex')).toBeUndefined();
    expect(parsePolynomial('31')).toBeUndefined(); // x^5 + x^4 + 1
  });
});

import { createCipheriv, type Cipher } from 'node:crypto';
import { loadAddon } from './native.js';

/**
 * AES in OpenPGP's CFB mode (zero IV, no resync), written into the caller's buffer.
 *
 * Through the plugin's addon (native/openpgp.c, built by scripts/build-native.mjs) when it is there:
 * the same OpenSSL, no memory allocated per call. Otherwise through node:crypto, whose every
 * `update()` returns a new buffer: the same bytes, at the cost of fresh memory per call (a page
 * fault per 4 KiB on virtual machines: more than the AES itself).
 */
export interface CfbStage {
  /** Encrypts or decrypts `src` into `dst` (the same length; `dst` may be `src`). */
  update(src: Uint8Array, dst: Uint8Array): void;
}

export type CfbBackend = 'addon' | 'node:crypto';

const BLOCK = 16;

/** Which implementation `cfbStage` uses by default here. */
export function cfbBackend(): CfbBackend {
  return loadAddon() ? 'addon' : 'node:crypto';
}

/**
 * A CFB stage for `algorithm` ('aes-128-cfb', 'aes-192-cfb' or 'aes-256-cfb') and `key`.
 * `backend` forces one implementation (tests compare them).
 */
export function cfbStage(algorithm: string, key: Buffer, decrypt: boolean, backend: CfbBackend = cfbBackend()): CfbStage {
  if (backend === 'addon') {
    const native = loadAddon();
    if (!native) throw new Error('the gpg plugin was built without its addon (scripts/build-native.mjs)');
    const handle = native.create(key, decrypt);
    return { update: (src, dst) => native.update(handle, src, dst) };
  }
  if (!decrypt) {
    const cipher = createCipheriv(algorithm, key, Buffer.alloc(BLOCK));
    return {
      update(src, dst) {
        for (let offset = 0; offset < src.length; offset += STEP) {
          const out = cipher.update(src.subarray(offset, offset + STEP));
          dst.set(out, offset);
        }
      },
    };
  }
  const decipher = new CfbDecipher(algorithm, key);
  return {
    update(src, dst) {
      for (let offset = 0; offset < src.length; offset += STEP) dst.set(decipher.update(src.subarray(offset, offset + STEP)), offset);
    },
  };
}

/**
 * How much node:crypto encrypts or decrypts per call. Each call returns a new, zero-filled
 * buffer, and each call has a fixed cost: whole runs measured with 4, 16, 64 and 256 KiB steps
 * used the least CPU with 64 KiB.
 */
const STEP = 64 * 1024;

/**
 * CFB decryption with node:crypto (full blocks, no resync: OpenPGP's SEIPD) computed as AES-ECB
 * of the previous ciphertext blocks XORed with the ciphertext. Decrypting CFB needs no block
 * before the one it decrypts, so OpenSSL's ECB runs several blocks at once: about three times
 * OpenSSL's own CFB decryption here, which goes one block at a time.
 */
class CfbDecipher {
  readonly #ecb: Cipher;
  /** The last whole ciphertext block (the zero IV at first). */
  #prev = Buffer.alloc(BLOCK);
  /** Ciphertext of the current incomplete block (already decrypted and handed out), and its keystream. */
  #partial = Buffer.alloc(0);
  #partialKeystream: Buffer | undefined;
  /** Reused: fresh memory costs a page fault per 4 KiB, more than the decryption itself. */
  #scratch = Buffer.alloc(0);

  constructor(algorithm: string, key: Buffer) {
    this.#ecb = createCipheriv(algorithm.replace(/-cfb$/, '-ecb'), key, null);
    this.#ecb.setAutoPadding(false);
  }

  update(data: Uint8Array): Buffer {
    const out: Buffer[] = [];
    let offset = 0;
    if (this.#partial.length) {
      const start = this.#partial.length;
      const take = data.subarray(0, BLOCK - start);
      out.push(xorBytes(take, this.#partialKeystream!.subarray(start)));
      this.#partial = Buffer.concat([this.#partial, take]);
      offset = take.length;
      if (this.#partial.length < BLOCK) return out[0]!;
      this.#prev = this.#partial;
      this.#partial = Buffer.alloc(0);
      this.#partialKeystream = undefined;
    }
    const rest = data.subarray(offset);
    const whole = rest.length - (rest.length % BLOCK);
    if (whole) {
      // The keystream of each block is the encryption of the ciphertext block before it.
      if (this.#scratch.length < whole) this.#scratch = Buffer.allocUnsafeSlow(Math.max(whole, STEP));
      const scratch = this.#scratch.subarray(0, whole);
      this.#prev.copy(scratch);
      scratch.set(rest.subarray(0, whole - BLOCK), BLOCK);
      const plain = this.#ecb.update(scratch);
      // XOR 32 bits at a time: both operands aligned (the ciphertext copied into the scratch).
      scratch.set(rest.subarray(0, whole));
      const a = new Int32Array(plain.buffer, plain.byteOffset, whole / 4);
      const b = new Int32Array(scratch.buffer, scratch.byteOffset, whole / 4);
      for (let i = 0; i < a.length; i++) a[i]! ^= b[i]!;
      out.push(plain);
      this.#prev = Buffer.from(rest.subarray(whole - BLOCK, whole));
    }
    const tail = rest.subarray(whole);
    if (tail.length) {
      this.#partialKeystream = this.#ecb.update(this.#prev);
      out.push(xorBytes(tail, this.#partialKeystream));
      this.#partial = Buffer.from(tail);
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

function xorBytes(data: Uint8Array, keystream: Buffer): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ keystream[i]!;
  return out;
}

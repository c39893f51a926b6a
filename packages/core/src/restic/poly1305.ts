import { createRequire } from 'node:module';
import { poly1305 as noblePoly1305 } from '@noble/ciphers/_poly1305.js';

/**
 * Poly1305 for the restic format's MACs: libsodium's (sodium-native, an optional dependency with
 * prebuilt binaries, ~10× faster) when it loads and agrees with @noble/ciphers on a test
 * vector, else noble's pure JavaScript. Chosen on first use, once per thread, so a tool that never
 * opens a restic repository never loads the binding. Native code stays optional: an install
 * without the binding (or with a broken one) is slower, never wrong.
 */

/** Writes the 16-byte tag of `message` under the one-time 32-byte key `key` into `out`. */
export type Poly1305Fn = (out: Uint8Array, message: Uint8Array, key: Uint8Array) => void;

export interface Poly1305Backend {
  name: 'libsodium' | 'noble';
  mac: Poly1305Fn;
}

export const noble: Poly1305Backend = {
  name: 'noble',
  mac: (out, message, key) => noblePoly1305.create(key).update(message).digestInto(out),
};

// RFC 8439, section 2.5.2.
const VECTOR_KEY = Buffer.from('85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b', 'hex');
const VECTOR_MESSAGE = Buffer.from('Cryptographic Forum Research Group');
const VECTOR_TAG = 'a8061dc1305136c6c22b8baf0c0127a9';

interface SodiumLike {
  crypto_onetimeauth(out: Uint8Array, message: Uint8Array, key: Uint8Array): void;
}

/** Whether `mac` gives the RFC's tag and noble's tag on a longer message (all block paths). */
function agreesWithNoble(mac: Poly1305Fn): boolean {
  const tag = Buffer.alloc(16);
  mac(tag, VECTOR_MESSAGE, VECTOR_KEY);
  if (tag.toString('hex') !== VECTOR_TAG) return false;
  const message = Buffer.alloc(1000);
  for (let i = 0; i < message.length; i++) message[i] = (i * 131 + 7) & 0xff;
  const expected = Buffer.alloc(16);
  noble.mac(expected, message, VECTOR_KEY);
  mac(tag, message, VECTOR_KEY);
  return tag.equals(expected);
}

/**
 * The backend `load` gives (sodium-native's module), checked; noble when it throws, lacks the
 * function or computes something else. Exported for tests, which hand it broken bindings.
 */
export function choosePoly1305(load: () => unknown): Poly1305Backend {
  try {
    const sodium = load() as Partial<SodiumLike> | undefined;
    const fn = sodium?.crypto_onetimeauth;
    if (typeof fn !== 'function') return noble;
    const mac: Poly1305Fn = (out, message, key) => fn(out, message, key);
    return agreesWithNoble(mac) ? { name: 'libsodium', mac } : noble;
  } catch {
    return noble;
  }
}

let chosen: Poly1305Backend | undefined;

/** This thread's backend, chosen on first call. */
export function poly1305Backend(): Poly1305Backend {
  chosen ??= choosePoly1305(() => createRequire(import.meta.url)('sodium-native'));
  return chosen;
}

import { createRequire } from 'node:module';

/** zstd-napi's binding module: ZSTD_CCtx and ZSTD_DCtx called directly. */
export type NapiBinding = typeof import('zstd-napi/binding.js');

let binding: NapiBinding | null | undefined;
let failure: string | undefined;

/**
 * zstd-napi's binding when it was built and loads, else undefined (`zstdNapiFailure()` says why).
 * Loaded on first use, never at start-up: an install made without install scripts (pnpm's default,
 * `npm install --ignore-scripts`) has no binding, and `--help` or a gzip run must still work.
 * Node-API is stable across Node versions, so a build made under Node 20 still loads under 24.
 */
export function zstdNapi(): NapiBinding | undefined {
  if (binding === undefined) {
    try {
      binding = createRequire(import.meta.url)('zstd-napi/binding.js') as NapiBinding;
    } catch (err) {
      binding = null;
      failure = (err as Error).message.split('\n')[0];
    }
  }
  return binding ?? undefined;
}

export function zstdNapiFailure(): string | undefined {
  zstdNapi();
  return failure;
}

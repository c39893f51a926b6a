import type { Readable } from 'node:stream';
import { DestinationWrapper, getRange, type Destination, type ObjectInfo, type PutInfo } from './destination.js';
import { isBackupError } from './errors.js';
import type { Logger } from './log.js';

export interface RetryOptions {
  retries: number;
  /** First delay; doubles each attempt, with jitter. */
  baseDelayMs: number;
  logger?: Logger;
  what?: string;
  /** Which errors get another try; default: isTransient. */
  retryable?: (err: unknown) => boolean;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 3, baseDelayMs: 500 };

const PERMANENT_CODES = ['E_INTEGRITY', 'E_CONFIG', 'E_USAGE', 'E_NOT_FOUND', 'E_PLUGIN_NOT_FOUND', 'E_AUTH', 'E_ABORTED'];
const PERMANENT_ERRNOS = ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS'];

/**
 * Errors worth another try, judged by their codes (never their messages): not integrity, usage,
 * authentication or "not found" problems, a full disk or a permission error, an HTTP 4xx answer
 * (but 408 and 429), nor errors whose details say `retryable: false` (a drive that is not
 * mounted will not mount itself).
 */
export function isTransient(err: unknown): boolean {
  if (isBackupError(err) && err.details.retryable === false) return false;
  if (isBackupError(err)) return !PERMANENT_CODES.includes(err.code) && isTransient(err.cause ?? {});
  const code = (err as { code?: string }).code;
  if (code && PERMANENT_ERRNOS.includes(code)) return false;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status && status >= 400 && status < 500 && status !== 408 && status !== 429) return false;
  return true;
}

/** Errors a withRetry already gave up on: an outer one (replication around a destination call) does not try them again. */
const exhausted = new WeakSet<object>();

function givenUp(err: unknown): boolean {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) if (exhausted.has(e)) return true;
  return false;
}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = DEFAULT_RETRY): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (givenUp(err) || !(options.retryable ?? isTransient)(err)) throw err;
      if (attempt >= options.retries) {
        if (err && typeof err === 'object') exhausted.add(err);
        throw err;
      }
      const delay = options.baseDelayMs * 2 ** attempt * (0.75 + Math.random() / 2);
      options.logger?.warn(`${options.what ?? 'operation'} failed, retrying in ${Math.round(delay)} ms`, {
        attempt: attempt + 1,
        error: err instanceof Error ? err.message : String(err),
      });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/**
 * A destination whose every operation is retried with backoff on transient errors (isTransient):
 * what the engine registers, so that prune, `list --from`, `verify --from` and restores ride out a
 * dropped connection as replication does. `put` is tried again only while its body is untouched
 * (nothing read, not destroyed): a body the destination began to read cannot be sent twice, and
 * the caller that can reopen it (replication) retries instead.
 */
export class RetryingDestination extends DestinationWrapper {
  readonly #retry: RetryOptions;

  constructor(inner: Destination, options: { name: string; logger?: Logger | undefined; retry?: Partial<RetryOptions> }) {
    super(inner);
    this.#retry = { ...DEFAULT_RETRY, ...options.retry, what: options.name, ...(options.logger ? { logger: options.logger } : {}) };
  }

  get description(): string {
    return this.inner.description;
  }

  #try<T>(doing: string, fn: () => Promise<T>, retryable?: (err: unknown) => boolean): Promise<T> {
    return withRetry(fn, { ...this.#retry, what: `${this.#retry.what}: ${doing}`, ...(retryable ? { retryable } : {}) });
  }

  put(key: string, body: Readable, info?: PutInfo): Promise<void> {
    return this.#try(`upload of ${key}`, () => this.inner.put(key, body, info), (err) => untouched(body) && isTransient(err));
  }

  get(key: string): Promise<Readable> {
    return this.#try(`reading ${key}`, () => this.inner.get(key));
  }

  getRange(key: string, offset: number, length: number): Promise<Readable> {
    return this.#try(`reading ${key}`, () => getRange(this.inner, key, offset, length));
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.#try(`listing ${prefix || '(everything)'}`, () => this.inner.list(prefix));
  }

  delete(key: string): Promise<void> {
    return this.#try(`deleting ${key}`, () => this.inner.delete(key));
  }

  stat(key: string): Promise<ObjectInfo | undefined> {
    return this.#try(`checking ${key}`, () => this.inner.stat(key));
  }

}

/** Whether a stream could still be sent whole: nothing read from it, not flowing, not destroyed. */
function untouched(body: Readable): boolean {
  return !body.destroyed && !body.readableDidRead && body.readableFlowing === null && !body.readableEnded;
}

/** `destination` with every operation retried (see RetryingDestination); `name` is how retries are logged (`destinations.offsite`). */
export function retryingDestination(destination: Destination, options: { name: string; logger?: Logger | undefined; retry?: Partial<RetryOptions> }): Destination {
  return destination instanceof RetryingDestination ? destination : new RetryingDestination(destination, options);
}

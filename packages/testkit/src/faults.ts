import type { Readable } from 'node:stream';
import { getRange, type Destination, type ObjectInfo, type PutInfo } from '@sutazai/backup-core';

export type DestinationOperation = 'put' | 'get' | 'getRange' | 'list' | 'stat' | 'delete';

/** A transient fault, as a dropped connection raises it: a Node error with code ECONNRESET. */
export function connectionReset(operation: string): Error {
  return Object.assign(new Error(`injected fault: ${operation}: connection reset by peer`), { code: 'ECONNRESET' });
}

/**
 * A destination that passes every call on to `inner`, counting them, and fails the next call of
 * chosen operations once with the error `failOnce` was given (before the call reaches `inner`,
 * so a put's body is left unread). Wrap it in core's retrying destination to see what core
 * retries.
 */
export class FaultInjector implements Destination {
  readonly inner: Destination;
  /** Calls per operation, faults included. */
  readonly calls: Partial<Record<DestinationOperation, number>> = {};
  readonly #pending = new Map<DestinationOperation, (operation: string) => Error>();

  constructor(inner: Destination) {
    this.inner = inner;
  }

  get description(): string {
    return this.inner.description;
  }

  /** The next call of each operation fails with `error(operation)`; later calls pass. */
  failOnce(operations: DestinationOperation[], error: (operation: string) => Error = connectionReset): void {
    for (const op of operations) this.#pending.set(op, error);
  }

  /** Forgets the counts (and any fault not yet raised). */
  reset(): void {
    for (const op of Object.keys(this.calls) as DestinationOperation[]) delete this.calls[op];
    this.#pending.clear();
  }

  #enter(op: DestinationOperation): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    const error = this.#pending.get(op);
    if (error) {
      this.#pending.delete(op);
      throw error(op);
    }
  }

  async put(key: string, body: Readable, info?: PutInfo): Promise<void> {
    this.#enter('put');
    return this.inner.put(key, body, info);
  }

  async get(key: string): Promise<Readable> {
    this.#enter('get');
    return this.inner.get(key);
  }

  /** Through the inner destination's getRange, or its get (core's `getRange`). */
  async getRange(key: string, offset: number, length: number): Promise<Readable> {
    this.#enter('getRange');
    return getRange(this.inner, key, offset, length);
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    this.#enter('list');
    return this.inner.list(prefix);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    this.#enter('stat');
    return this.inner.stat(key);
  }

  async delete(key: string): Promise<void> {
    this.#enter('delete');
    return this.inner.delete(key);
  }
}

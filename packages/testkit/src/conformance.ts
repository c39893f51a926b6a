import type { Destination } from '@sutazai/backup-core';

export interface ConformanceOptions {
  /** Makes a fresh, empty destination for each check. */
  create: () => Promise<Destination> | Destination;
}

/**
 * The Destination contract, as a list of named checks a test runner can register
 * (`for (const c of runDestinationConformance(...)) it(c.name, c.run)`).
 */
export function runDestinationConformance(_options: ConformanceOptions): { name: string; run: () => Promise<void> }[] {
  return [];
}

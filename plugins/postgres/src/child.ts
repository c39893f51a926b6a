import type { Readable } from 'node:stream';
import { runChild, startChild, type Child, type ChildOptions } from '@sutazai/backup-core';
import type { Tool } from './tools.js';

export type SpawnOptions = ChildOptions;

/** Starts a PostgreSQL client program. Its arguments never carry a password: the connection is in `env`. */
export function startTool(tool: Tool, args: string[], options: SpawnOptions): Child {
  return startChild(tool, args, options);
}

/** Runs a PostgreSQL client program to the end (see core's `runChild`); resolves with its stdout. */
export function runTool(tool: Tool, args: string[], options: SpawnOptions & { input?: Readable }): Promise<string> {
  return runChild(tool, args, options);
}

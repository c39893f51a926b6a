import type { Command } from 'commander';
import type { Engine, Logger } from '@sutazai/backup-core';
import type { Io } from './main.js';

/** What main.ts hands the modules that register commands of their own. */
export interface CommandContext {
  io: Io;
  print(text: string): void;
  printJson(value: unknown): void;
  /** Loads the config and the engine for the command (global options: --config, --log-level), runs `fn`, closes the engine. */
  withEngine<T>(command: Command, fn: (engine: Engine, logger: Logger) => Promise<T>): Promise<T>;
  setExitCode(code: number): void;
}

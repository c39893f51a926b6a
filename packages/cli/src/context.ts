import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { decryptsNothing } from './decrypts-nothing.js';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { BackupError, ExitCode } from '@sutazai/backup-core/errors';
import type { Engine, LogLevel, Logger, ResolvedConfig } from '@sutazai/backup-core';

export type Core = typeof import('@sutazai/backup-core');

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream | (NodeJS.WritableStream & { isTTY?: boolean });
  cwd: string;
  env: NodeJS.ProcessEnv;
}

interface GlobalOptions {
  config?: string;
  logLevel?: LogLevel;
}

/** The folder of the CLI's built modules: plugins resolve from here too, and `bin.js` is here. */
export const CLI_DIR = path.dirname(fileURLToPath(import.meta.url));

/**
 * The engine and everything it loads, from the first command's action on: `--help`, `--version`
 * and usage errors need only commander and core's errors, and start in a fraction of the time.
 */
let core: Core | undefined;

/** Loads core; the program's preAction hook calls it before any command's action runs. */
export async function loadCore(): Promise<Core> {
  core ??= await import('@sutazai/backup-core');
  return core;
}

/** Core if a command has loaded it (for redacting what is printed), else undefined. */
export function coreIfLoaded(): Core | undefined {
  return core;
}

/**
 * What each command module gets from `main`: the process's streams, printing (JSON redacted),
 * the engine for the duration of an action, and the exit code to return. A command module
 * exports `register<Name>Command(program, cli)`, which adds its commands to `program`.
 */
export interface CliContext {
  readonly io: Io;
  /** Core, loaded by the program's preAction hook: call it inside an action only. */
  core(): Core;
  print(text: string): void;
  /** One JSON document on stdout, with every known secret masked. */
  printJson(value: unknown): void;
  /** The rc file, read as the global options (`--config`) say. */
  loadConfig(command: Command): Promise<ResolvedConfig>;
  /** Loads the config and every plugin, runs `fn` with the engine, and closes the engine. */
  withEngine<T>(command: Command, fn: (engine: Engine, logger: Logger) => Promise<T>): Promise<T>;
  /** What `main` resolves with when the action returns: 0 unless a command sets it. */
  exitCode: number;
  /** The engine's logger, once an action made one: errors are then logged through it. */
  readonly logger: Logger | undefined;
}

export function createCliContext(io: Io): CliContext {
  const print = (text: string) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  let logger: Logger | undefined;
  const cli: CliContext = {
    io,
    core: () => {
      if (!core) throw new Error('core is loaded by the preAction hook: call cli.core() inside an action');
      return core;
    },
    print,
    printJson: (value) => print(JSON.stringify(core ? core.secrets.redactDeep(value) : value, null, 2)),
    loadConfig: (command) => {
      const globals = command.optsWithGlobals() as GlobalOptions;
      return cli.core().loadConfig({
        cwd: io.cwd,
        ...(globals.config ? { configPath: globals.config } : {}),
        env: io.env,
        resolveFrom: [CLI_DIR],
        // list, status, metrics and the like read no artifact: they need no encryption secret.
        deferEncryptionSecrets: decryptsNothing(command),
      });
    },
    async withEngine(command, fn) {
      const { createLogger, createProgress, Engine } = cli.core();
      const config = await cli.loadConfig(command);
      const globals = command.optsWithGlobals() as GlobalOptions;
      const progress = createProgress(io.stderr as NodeJS.WriteStream);
      const log = createLogger({
        level: globals.logLevel ?? (io.env.SUTAZAI_BACKUP_LOG_LEVEL as LogLevel | undefined) ?? config.logLevel ?? 'info',
        stream: io.stderr,
        onBeforeWrite: () => progress.clear(),
      });
      logger = log;
      for (const w of config.warnings) log.warn(w);
      const now = clockFrom(io.env);
      const engine = new Engine(config, { logger: log, progress, ...(now ? { now } : {}) });
      try {
        await engine.init();
        return await fn(engine, log);
      } finally {
        await engine.close();
      }
    },
    exitCode: ExitCode.ok,
    get logger() {
      return logger;
    },
  };
  return cli;
}

/** The CLI's version and core's, for `--version`. */
export function versions(): { cli: string; core: string } {
  const read = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  return { cli: read(path.join(CLI_DIR, '../package.json')), core: read(createRequire(import.meta.url).resolve('@sutazai/backup-core/package.json')) };
}

/**
 * SUTAZAI_BACKUP_NOW=<ISO time> shifts the engine's clock to start at that time (then it runs
 * on): for tests and rehearsals that script days of runs and health checks in minutes.
 */
function clockFrom(env: NodeJS.ProcessEnv): (() => Date) | undefined {
  const text = env.SUTAZAI_BACKUP_NOW;
  if (!text) return undefined;
  const start = Date.parse(text);
  if (Number.isNaN(start)) throw new BackupError('E_USAGE', `SUTAZAI_BACKUP_NOW: "${text}" is not a time (expected ISO 8601, e.g. 2026-11-26T02:00:00Z)`);
  const offset = start - Date.now();
  return () => new Date(Date.now() + offset);
}

/** commander's collector for repeatable options (`--only a --only b`). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Options a command takes as `--from <dest>`, passed on only when given. */
export function fromOption(from: string | undefined): { from?: string } {
  return from ? { from } : {};
}

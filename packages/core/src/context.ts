import path from 'node:path';
import type { ProfileConfig, ResolvedConfig } from './config.js';
import { LocalDestination } from './destination.js';
import { BackupError } from './errors.js';
import type { Hooks, RegisteredDestination } from './hooks.js';
import { RunHistory } from './history.js';
import type { Logger } from './log.js';
import { NotificationStateStore } from './notify.js';
import type { Progress } from './progress.js';
import type { RetentionPolicy } from './retention.js';
import { DEFAULT_FORMAT, openRepository, type FormatOptions, type RepositoryFormat, type SnapshotRepository } from './repository-format.js';
import type { SecretRegistry } from './secrets.js';

/** backupRoot's repository name, in messages, history records and `--json`. */
export const BACKUP_ROOT = 'backupRoot';

/** A repository and the retention that prunes it (a destination's own, else each snapshot's profile's). */
export interface PruneTarget {
  name: string;
  repo: SnapshotRepository;
  retention: RetentionPolicy | undefined;
}

/** backupRoot's repository and the destinations' (registered by destination plugins at init). */
export class Repositories {
  readonly local: SnapshotRepository;
  readonly #destinations = new Map<string, RegisteredDestination>();
  readonly #format: RepositoryFormat;
  readonly #options: FormatOptions;

  /** Every repository, backupRoot's and each destination's, is in one format. */
  constructor(backupRoot: string, format: RepositoryFormat = DEFAULT_FORMAT, options: FormatOptions = {}) {
    this.#format = format;
    this.#options = options;
    this.local = openRepository(new LocalDestination(backupRoot), BACKUP_ROOT, format, options);
  }

  get destinations(): ReadonlyMap<string, RegisteredDestination> {
    return this.#destinations;
  }

  add(d: RegisteredDestination): void {
    if (this.#destinations.has(d.name)) throw new BackupError('E_CONFIG', `destination ${d.name} is registered twice`);
    this.#destinations.set(d.name, d);
  }

  /** The repository at backupRoot, or at the named destination (`--from`). */
  at(from?: string): SnapshotRepository {
    if (!from || from === BACKUP_ROOT) return this.local;
    const d = this.#destinations.get(from);
    if (!d) {
      const names = [...this.#destinations.keys()];
      throw new BackupError('E_USAGE', `unknown destination "${from}"${names.length ? ` (destinations: ${names.join(', ')})` : ' (none is configured)'}`);
    }
    return openRepository(d.destination, `destinations.${d.name}`, this.#format, this.#options);
  }

  /** Whether `name` (`destinations.<name>`, as history records say) is a configured destination. */
  hasDestination(repository: string): boolean {
    return this.#destinations.has(repository.replace(/^destinations\./, ''));
  }

  /** backupRoot and every destination, each with its own retention (none: the profiles'). */
  pruneTargets(): PruneTarget[] {
    return [
      { name: BACKUP_ROOT, repo: this.local, retention: undefined },
      ...[...this.#destinations.values()].map((d) => ({ name: d.name, repo: this.at(d.name), retention: d.retention })),
    ];
  }
}

/**
 * What every command's module works with, made once by the Engine: the modules take this
 * instead of reaching into the Engine (webpack's Compilation gets its Compiler's parts so).
 */
export interface EngineContext {
  readonly config: ResolvedConfig;
  readonly hooks: Hooks;
  readonly logger: Logger;
  readonly secrets: SecretRegistry;
  readonly progress: Progress;
  /** The engine's clock: run times, snapshot ids, freshness, throttle windows. */
  readonly now: () => Date;
  /** `<backupRoot>/state`: the lock, the history, the notification state. */
  readonly stateDir: string;
  readonly history: RunHistory;
  readonly notifications: NotificationStateStore;
  readonly repositories: Repositories;
}

export function createContext(parts: Omit<EngineContext, 'stateDir' | 'history' | 'notifications' | 'repositories'>): EngineContext {
  const stateDir = path.join(parts.config.backupRoot, 'state');
  return Object.freeze({
    ...parts,
    stateDir,
    history: new RunHistory(stateDir),
    notifications: new NotificationStateStore(stateDir),
    repositories: new Repositories(parts.config.backupRoot, parts.config.repository?.format, {
      password: parts.config.repository?.password,
      host: parts.config.host,
    }),
  });
}

/** Records a line of history; a failure to do so is a warning, never the command's failure. */
export async function recordHistory(ctx: EngineContext, record: Parameters<RunHistory['append']>[0], what: string, logger: Logger = ctx.logger): Promise<void> {
  await ctx.history.append(record).catch((err) => logger.warn(`could not record ${what} in ${ctx.stateDir}: ${(err as Error).message}`));
}

/** A profile by name (`--profile`); without a name, the only one, else a usage error listing them. */
export function profileNamed(config: ResolvedConfig, name?: string): ProfileConfig {
  const names = Object.keys(config.profiles);
  if (name) {
    const p = config.profiles[name];
    if (!p) throw new BackupError('E_USAGE', `unknown profile "${name}" (profiles: ${names.join(', ')})`);
    return p;
  }
  if (names.length === 1) return config.profiles[names[0]!]!;
  throw new BackupError('E_USAGE', `choose a profile with --profile (profiles: ${names.join(', ')})`);
}

/** Exit codes of the command-line contract. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  locked: 75,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * Error codes. The first group maps to exit code 2 (the user must fix the config or the
 * command line), `E_LOCKED` to 75, everything else to 1.
 */
export type ErrorCode =
  | 'E_CONFIG'
  | 'E_USAGE'
  | 'E_PLUGIN_NOT_FOUND'
  | 'E_LOCKED'
  | 'E_SOURCE'
  | 'E_ARCHIVE'
  | 'E_INTEGRITY'
  | 'E_VERIFY'
  | 'E_DESTINATION'
  /** Authentication or identity failed: bad credentials, an unknown or changed host key. Never retried. */
  | 'E_AUTH'
  | 'E_NOT_FOUND'
  | 'E_RESTORE'
  | 'E_RESTORE_TEST'
  | 'E_RETENTION'
  | 'E_NOTIFY'
  | 'E_PLUGIN'
  | 'E_ABORTED'
  /** The tool's own state under backupRoot (history, notification state) cannot be read or written. */
  | 'E_STATE'
  | 'E_INTERNAL';

const usageCodes: ReadonlySet<ErrorCode> = new Set(['E_CONFIG', 'E_USAGE', 'E_PLUGIN_NOT_FOUND']);

export interface BackupErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
  /** The plugin (instance) the error comes from, e.g. `sources.app-db`. */
  plugin?: string;
  /** The lifecycle stage the error comes from, e.g. `collect`. */
  stage?: string;
}

/** The one error type of the project: every failure a user sees is a BackupError with a code. */
export class BackupError extends Error {
  override readonly name: string = 'BackupError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  plugin: string | undefined;
  stage: string | undefined;

  constructor(code: ErrorCode, message: string, options: BackupErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    this.plugin = options.plugin;
    this.stage = options.stage;
  }

  get exitCode(): ExitCode {
    if (this.code === 'E_LOCKED') return ExitCode.locked;
    return usageCodes.has(this.code) ? ExitCode.usage : ExitCode.failed;
  }

  toJSON(): { code: ErrorCode; message: string; stage?: string; plugin?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.stage ? { stage: this.stage } : {}),
      ...(this.plugin ? { plugin: this.plugin } : {}),
      ...(Object.keys(this.details).length ? { details: this.details } : {}),
    };
  }
}

/** A problem in the rc file: names the file and the dotted key path. Exit code 2. */
export class ConfigError extends BackupError {
  override readonly name = 'ConfigError';
  readonly file: string | undefined;
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], file?: string, options: BackupErrorOptions = {}) {
    const where = file ? `${file}: ` : '';
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    const message =
      lines.length === 1 ? `${where}${lines[0]}` : `${where}${lines.length} problems\n  ${lines.join('\n  ')}`;
    super('E_CONFIG', message, { ...options, details: { ...options.details, file, issues } });
    this.file = file;
    this.issues = issues;
  }
}

export interface ConfigIssue {
  /** Dotted key path in the rc file, e.g. `sources.app-db.url`; empty for the whole file. */
  path: string;
  message: string;
}

export function isBackupError(err: unknown): err is BackupError {
  // Duck-typed so that errors from another copy of this package still count.
  return (
    err instanceof BackupError ||
    (typeof err === 'object' &&
      err !== null &&
      typeof (err as { code?: unknown }).code === 'string' &&
      String((err as { code: string }).code).startsWith('E_') &&
      typeof (err as { exitCode?: unknown }).exitCode === 'number')
  );
}

/**
 * Wraps whatever a plugin threw in a BackupError that names the plugin and the stage.
 * The project's own errors pass through, gaining the plugin and stage if they lack them.
 */
export function toPluginError(err: unknown, plugin: string, stage: string, code: ErrorCode = 'E_PLUGIN'): BackupError {
  if (isBackupError(err)) {
    err.plugin ??= plugin;
    err.stage ??= stage;
    return err;
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BackupError(code, `${plugin} (${stage}): ${message}`, { cause: err, plugin, stage });
}

/** The exit code for any thrown value. */
export function exitCodeOf(err: unknown): ExitCode {
  return isBackupError(err) ? err.exitCode : ExitCode.failed;
}

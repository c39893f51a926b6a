import { fstatSync } from 'node:fs';
import { secrets as defaultSecrets, type SecretRegistry } from './secrets.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds these fields to every line (e.g. `{ plugin: 'sources.app-db' }`). */
  child(fields: LogFields): Logger;
  /** The last lines logged, redacted: the run report's log tail. */
  tail(lines?: number): string[];
  readonly level: LogLevel;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; stderr by default. Logs never go to stdout, which belongs to `--json`. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** JSON lines; default: when the stream is not a TTY. */
  json?: boolean;
  secrets?: SecretRegistry;
  /** Called before a line is written on a TTY, so a progress line can clear itself. */
  onBeforeWrite?: () => void;
  /**
   * Start each line with its sd-daemon priority (`<3>` error, `<4>` warn, `<6>` info, `<7>`
   * debug), which journald reads as the entry's priority. Default: when the stream is this
   * process's stderr and systemd connected it to the journal (JOURNAL_STREAM names it).
   */
  journal?: boolean;
}

const PRIORITY: Record<Exclude<LogLevel, 'silent'>, string> = { error: '<3>', warn: '<4>', info: '<6>', debug: '<7>' };

/**
 * Whether file descriptor `fd` is the journal's stream: systemd sets JOURNAL_STREAM to its
 * `device:inode`, so that a process whose stderr was redirected elsewhere does not prefix.
 */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const [dev, ino] = (env.JOURNAL_STREAM ?? '').split(':');
  if (!dev || !ino) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

interface Sink {
  level: LogLevel;
  json: boolean;
  stream: NodeJS.WritableStream;
  secrets: SecretRegistry;
  ring: string[];
  onBeforeWrite: (() => void) | undefined;
  journal: boolean;
}

const RING_SIZE = 200;

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const sink: Sink = {
    level: options.level ?? (process.env.SUTAZAI_BACKUP_LOG_LEVEL as LogLevel | undefined) ?? 'info',
    json: options.json ?? !(stream as { isTTY?: boolean }).isTTY,
    stream,
    secrets: options.secrets ?? defaultSecrets,
    ring: [],
    onBeforeWrite: options.onBeforeWrite,
    journal: options.journal ?? (stream === process.stderr && isJournalStream(2)),
  };
  if (!(sink.level in order)) sink.level = 'info';
  return makeLogger(sink, {});
}

/** A logger that drops everything (for embedding and tests). */
export function silentLogger(): Logger {
  return createLogger({ level: 'silent', stream: { write: () => true } as unknown as NodeJS.WritableStream });
}

function makeLogger(sink: Sink, bound: LogFields): Logger {
  const write = (level: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields) => {
    const all = { ...bound, ...fields };
    const human = `${level.padEnd(5)} ${formatScope(all)}${message}${formatFields(all)}`;
    const redactedHuman = sink.secrets.redact(human);
    sink.ring.push(`${new Date().toISOString()} ${redactedHuman}`);
    if (sink.ring.length > RING_SIZE) sink.ring.shift();
    if (order[level] < order[sink.level]) return;
    let line: string;
    if (sink.json) {
      const record = sink.secrets.redactDeep({ time: new Date().toISOString(), level, msg: message, ...serializable(all) });
      line = JSON.stringify(record);
    } else {
      line = `${new Date().toISOString().slice(11, 19)} ${redactedHuman}`;
      sink.onBeforeWrite?.();
    }
    // Every line of a message: journald takes each line for an entry of its own.
    if (sink.journal) line = line.replace(/^/gm, PRIORITY[level]);
    sink.stream.write(line + '\n');
  };
  return {
    get level() {
      return sink.level;
    },
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => makeLogger(sink, { ...bound, ...fields }),
    tail: (lines = 20) => sink.ring.slice(-lines),
  };
}

function formatScope(fields: LogFields): string {
  const scope = fields.plugin ?? fields.stage;
  return scope ? `[${String(scope)}] ` : '';
}

function formatFields(fields: LogFields): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'plugin' || v === undefined) continue;
    if (k === 'stage' && !fields.plugin) continue;
    parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(serializable(v))}`);
  }
  return parts.length ? `  ${parts.join(' ')}` : '';
}

function serializable(value: unknown): any {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { message: value.message, ...(code ? { code } : {}) };
  }
  if (Array.isArray(value)) return value.map(serializable);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = serializable(v);
    return out;
  }
  return value;
}

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  BackupError,
  defineSource,
  expandHome,
  isSecretKey,
  runChild,
  startChild,
  z,
  type Child,
  type Logger,
  type SecretRegistry,
} from '@sutazai/backup-core';

/** A program and its arguments (run as is), or one string run by `/bin/sh -c`. */
const commandLine = z.union([z.string().min(1), z.array(z.string()).min(1)]);

export const commandOptions = z
  .object({
    /** What prints the data on its stdout: `[redis-cli, --rdb, -]`, or a shell line. */
    command: commandLine,
    /** The artifact's extension: `<source>.<ext>.zst`. */
    ext: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, 'letters, digits, _ and -, starting with a letter or digit (e.g. rdb, json)')
      .default('out'),
    /** The file `restore --to DIR` writes under DIR/<source>/ (default `<source>.<ext>`). */
    filename: z
      .string()
      .regex(/^(?!\.\.?$)[^/\\\0]+$/, 'a file name, without folders')
      .optional(),
    /** More environment for the command; the place for its secrets (never the command line). */
    env: z.record(z.string(), z.string()).default({}),
    /**
     * Pass the backup process's environment on, not only PATH, HOME, USER, LOGNAME, LANG, LC_*,
     * TZ, TMPDIR: all of it but the variables that hold one of its secrets (the encryption
     * passphrase, a notifier's token), which the command gets only through `env`.
     */
    inheritEnv: z.boolean().default(false),
    /** The command's working folder; relative to the rc file's folder. */
    cwd: z.string().min(1).optional(),
    /** Seconds the command (and the check) may run before it is stopped and fails. */
    timeout: z.number().positive().optional(),
    /** Accept empty output (by default a command that prints nothing fails). */
    allowEmpty: z.boolean().default(false),
    /**
     * Run by `verify` and `restore-test` on the restored bytes: they come on its stdin, and their
     * path is in $SUTAZAI_BACKUP_FILE. It must exit 0.
     */
    check: commandLine.optional(),
  })
  .strict();

export type CommandOptions = z.input<typeof commandOptions>;
type Options = z.output<typeof commandOptions>;

/** What the command gets beyond core's minimal environment: its `env`, and with `inheritEnv` ours but for our secrets. */
function commandEnvironment(options: Options, secrets: SecretRegistry, extra: Record<string, string> = {}): Record<string, string | undefined> {
  const inherited = options.inheritEnv ? Object.entries(process.env).filter(([, value]) => value !== undefined && secrets.redact(value) === value) : [];
  return { ...Object.fromEntries(inherited), ...options.env, ...extra };
}

/** The program to run and its arguments. */
function argv(line: string | string[]): { program: { path: string; name: string }; args: string[] } {
  if (typeof line === 'string') return { program: { path: '/bin/sh', name: 'sh -c' }, args: ['-c', line] };
  const [first, ...rest] = line;
  return { program: { path: first!, name: path.basename(first!) }, args: rest };
}

/** The command line as the manifest and messages show it, quoted as a shell would need it (known secrets redacted). */
function display(line: string | string[], secrets: SecretRegistry): string {
  return secrets.redact(typeof line === 'string' ? line : line.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' '));
}

/** A command line for a message: on one line, and not a whole script (the manifest has it all). */
function brief(shown: string): string {
  const line = shown.replace(/\s+/g, ' ').trim();
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/** Stops the child after `timeout` seconds; the failure then says so. */
function withTimeout(child: Child, seconds: number | undefined, what: string): Promise<void> {
  if (seconds === undefined) return child.exited;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill();
  }, seconds * 1000);
  return child.exited
    .catch((err: unknown) => {
      if (timedOut) throw new BackupError('E_SOURCE', `${what} failed: it did not finish within ${seconds} s (timeout) and was stopped`, { cause: err });
      throw err;
    })
    .finally(() => clearTimeout(timer));
}

/** Runs `check` on one file; resolves with the check's outcome (a failure is a failed check, not an error). */
async function runCheck(file: string, options: Options, ctx: { key: string; configDir: string; secrets: SecretRegistry; logger: Logger }): Promise<{ ok: boolean; detail: string }> {
  const { program, args } = argv(options.check!);
  const what = `${ctx.key}: check ${brief(display(options.check!, ctx.secrets))}`;
  // The same time limit as the command's: a check that hangs must not hang verify.
  const signal = options.timeout !== undefined ? AbortSignal.timeout(options.timeout * 1000) : undefined;
  try {
    await runChild(program, args, {
      env: commandEnvironment(options, ctx.secrets, { SUTAZAI_BACKUP_FILE: file }),
      cwd: options.cwd ? path.resolve(ctx.configDir, expandHome(options.cwd)) : ctx.configDir,
      what,
      code: 'E_VERIFY',
      secrets: ctx.secrets,
      logger: ctx.logger,
      signal,
      group: true,
      input: createReadStream(file) as Readable,
    });
    return { ok: true, detail: 'exited 0' };
  } catch (err) {
    if (signal?.aborted) return { ok: false, detail: `${what} failed: it did not finish within ${options.timeout} s (timeout) and was stopped` };
    return { ok: false, detail: ctx.secrets.redact((err as Error).message) };
  }
}

/**
 * `use: command` — the stdout of a command as one artifact: anything a program can print (a
 * database's own dump tool, an export, an API call through curl). A command that exits non-zero,
 * is killed, times out or prints nothing fails the source, and nothing of it is committed. With
 * `check`, verify and restore tests run a command of your choice on the restored bytes.
 */
export default defineSource({
  name: 'command',
  options: commandOptions,
  async collect(ctx, options) {
    // Values of secret-looking variables (PASSWORD, TOKEN, REDISCLI_AUTH, ...) are redacted wherever they could appear.
    for (const [name, value] of Object.entries(options.env)) if (isSecretKey(name) || /auth|cred/i.test(name)) ctx.secrets.add(value);
    const cwd = options.cwd ? path.resolve(ctx.configDir, expandHome(options.cwd)) : ctx.configDir;
    // Otherwise spawn says the program is missing (ENOENT) when it is the folder.
    if (!(await stat(cwd).then((s) => s.isDirectory(), () => false))) {
      throw new BackupError('E_SOURCE', `${ctx.key}: cwd ${cwd} is not a folder`, { plugin: ctx.key });
    }
    const { program, args } = argv(options.command);
    const shown = display(options.command, ctx.secrets);
    const what = `${ctx.key}: command ${brief(shown)}`;
    return [
      {
        type: 'file' as const,
        name: ctx.instance,
        ext: options.ext,
        filename: options.filename ?? `${ctx.instance}.${options.ext}`,
        ...(options.allowEmpty ? { allowEmpty: true } : {}),
        meta: { command: shown },
        async open({ signal, logger }) {
          // In a process group of its own: a timeout or an abort stops what the command started too.
          const child = startChild(program, args, { env: commandEnvironment(options, ctx.secrets), cwd, what, code: 'E_SOURCE', secrets: ctx.secrets, logger, signal, group: true });
          const done = withTimeout(child, options.timeout, what).then(() => ({ exitCode: 0 }));
          return { stream: child.stdout!, done };
        },
      },
    ];
  },
  async verify(ctx, options) {
    if (!options.check) return;
    const file = await ctx.materialize();
    const { ok, detail } = await runCheck(file, options, { key: ctx.plugin.key, configDir: ctx.plugin.configDir, secrets: ctx.plugin.secrets, logger: ctx.logger });
    ctx.addCheck('check', ok, detail);
  },
  async restoreTest(ctx, options) {
    if (!options.check) return;
    const { ok, detail } = await runCheck(ctx.restoredPath, options, { key: ctx.plugin.key, configDir: ctx.plugin.configDir, secrets: ctx.plugin.secrets, logger: ctx.logger });
    ctx.addCheck('check', ok, detail);
  },
});

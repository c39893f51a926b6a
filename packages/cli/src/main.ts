import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { BackupError, ConfigError, ExitCode, exitCodeOf, isBackupError } from '@sutazai/backup-core/errors';
import type { Engine, LogLevel, Logger } from '@sutazai/backup-core';
import { STARTER_RC } from './init.js';
import { registerDaemon } from './daemon.js';
import { registerScheduling } from './scheduling-commands.js';
import { decryptsNothing } from './decrypts-nothing.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const STOP_GRACE_MS = 10_000;
const cliVersion = (JSON.parse(readFileSync(path.join(here, '../package.json'), 'utf8')) as { version: string }).version;

type Core = typeof import('@sutazai/backup-core');
/**
 * The engine and everything it loads, from the first command's action on: `--help`, `--version`
 * and usage errors need only commander and core's errors, and start in a fraction of the time.
 */
let core: Core | undefined;
const loaded = (): Core => core!;

function coreVersion(): string {
  const file = createRequire(import.meta.url).resolve('@sutazai/backup-core/package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

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

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const program = new Command();
  const print = (text: string) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  const printJson = (value: unknown) => print(JSON.stringify(core ? core.secrets.redactDeep(value) : value, null, 2));

  program
    .name('sutazai-backup')
    .description('Plugin-based backups for self-hosted AI platforms: run, verify, replicate, restore.')
    .version(`${cliVersion} (core ${coreVersion()})`, '--version', 'print the version')
    .option('--config <file>', 'the rc file (default: search for .sutazai-backuprc from the working directory)')
    .addOption(new Option('--log-level <level>', 'how much to log on stderr').choices(['debug', 'info', 'warn', 'error', 'silent']))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .hook('preAction', async () => {
      core ??= await import('@sutazai/backup-core');
    });

  let logger: Logger | undefined;
  const withEngine = async <T>(command: Command, fn: (engine: Engine, logger: Logger) => Promise<T>): Promise<T> => {
    const globals = command.optsWithGlobals() as GlobalOptions;
    const { createLogger, createProgress, Engine, loadConfig } = loaded();
    const config = await loadConfig({
      cwd: io.cwd,
      ...(globals.config ? { configPath: globals.config } : {}),
      env: io.env,
      resolveFrom: [here],
      deferEncryptionSecrets: decryptsNothing(command),
    });
    const progress = createProgress(io.stderr as NodeJS.WriteStream);
    logger = createLogger({
      level: globals.logLevel ?? (io.env.SUTAZAI_BACKUP_LOG_LEVEL as LogLevel | undefined) ?? config.logLevel ?? 'info',
      stream: io.stderr,
      onBeforeWrite: () => progress.clear(),
    });
    for (const w of config.warnings) logger.warn(w);
    const now = clockFrom(io.env);
    const engine = new Engine(config, { logger, progress, ...(now ? { now } : {}) });
    try {
      await engine.init();
      return await fn(engine, logger);
    } finally {
      await engine.close();
    }
  };
  const context = { io, print, printJson, withEngine, setExitCode: (code: number) => void (exitCode = code) };

  program
    .command('run')
    .description('back up the sources of a profile: collect, archive, verify, commit, replicate, prune, notify')
    .option('--profile <name>', 'the profile to run (default: the only one, or "default")')
    .option('--only <source>', 'back up only this source (repeatable)', collect, [])
    .option('--dry-run', 'say what would be backed up, write nothing')
    .option('--sequential', 'archive one artifact at a time')
    .option('--wait <duration>', 'when another run holds the lock, wait this long for it ("6h"); a run that gives up is recorded and alerted')
    .option('--json', 'print the run report as JSON on stdout')
    .action(async (opts: { profile?: string; only: string[]; dryRun?: boolean; sequential?: boolean; wait?: string; json?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const abort = new AbortController();
        // A run stopped by a signal exits as the shell reports a process killed by it (130, 143),
        // once it has cleaned up: a scheduler then tells a stopped run from a failed one.
        let stoppedWith: number | undefined;
        const stop = (signal: NodeJS.Signals) => {
          const code = 128 + (osConstants.signals[signal] ?? 15);
          stoppedWith ??= code;
          logger?.warn(`received ${signal}: stopping; nothing half-written will be committed`);
          abort.abort(new BackupError('E_ABORTED', `interrupted by ${signal}`));
          // A plugin stuck in a hook must not keep the run (and its lock) alive for ever: the
          // lock is released on exit, and the next run cleans what this one staged.
          setTimeout(() => process.exit(code), STOP_GRACE_MS).unref();
          process.once(signal, () => process.exit(code));
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          const report = await (await import('./run-wait.js')).runWaiting(engine, {
            ...(opts.profile ? { profile: opts.profile } : {}),
            only: opts.only,
            dryRun: Boolean(opts.dryRun),
            sequential: Boolean(opts.sequential),
            signal: abort.signal,
          }, opts.wait);
          if (opts.json) printJson(report);
          else if (report.status === 'success') {
            const bytes = report.artifacts.reduce((s, a) => s + a.bytes, 0);
            print(
              report.dryRun
                ? `dry run of profile ${report.profile}: nothing written`
                : `snapshot ${report.snapshot} committed: ${report.artifacts.length} artifact(s), ${loaded().formatBytes(bytes)}, ${(report.durationMs / 1000).toFixed(1)}s`,
            );
          } else {
            print(`run failed${report.snapshot ? ` (snapshot ${report.snapshot} was committed)` : ' (no snapshot committed)'}:`);
            for (const e of report.errors) print(`  ${e.plugin ? `${e.plugin} ` : ''}(${e.stage}) ${e.message}`);
          }
          if (!opts.json) for (const n of report.notifications) if (n.status === 'failed') print(`  notification ${n.channel} not delivered: ${n.error}`);
          exitCode = stoppedWith ?? (report.status === 'success' ? ExitCode.ok : ExitCode.failed);
        } finally {
          process.removeListener('SIGINT', stop);
          process.removeListener('SIGTERM', stop);
        }
      });
    });

  program
    .command('list')
    .description('list snapshots, oldest first')
    .option('--from <dest>', 'list a destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { from?: string; json?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const snapshots = await engine.list(opts.from ? { from: opts.from } : {});
        if (opts.json) return printJson(snapshots);
        if (snapshots.length === 0) return print('no snapshots');
        print(table(['ID', 'PROFILE', 'HOST', 'CREATED', 'SIZE', 'ARTIFACTS'], snapshots.map((s) => [s.id, s.profile, s.host, s.createdAt, loaded().formatBytes(s.bytes), s.artifacts.map((a) => a.source).join(',')])));
      });
    });

  program
    .command('restore')
    .description('restore a snapshot into a folder (--to) or a database source into a server (--into)')
    .argument('<snapshot>', 'a snapshot id (or a unique prefix), or "latest"')
    .option('--to <dir>', 'restore under DIR/<source>/')
    .option('--into <url>', 'restore a database source into this server')
    .option('--source <name>', 'restore only this source (repeatable)', collect, [])
    .option('--database <db>', 'with --into: restore this database of the source into the database the URL names')
    .option('--clean', 'with --into: replace a non-empty target database')
    .option('--force', 'with --to: overwrite a non-empty DIR/<source>')
    .option('--preserve-owner', 'with --to: keep the archived owners (as root)')
    .option('--from <dest>', 'read from a destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: { to?: string; into?: string; source: string[]; database?: string; clean?: boolean; force?: boolean; preserveOwner?: boolean; from?: string; json?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const result = await engine.restore({
          snapshot,
          ...(opts.to ? { to: path.resolve(io.cwd, opts.to) } : {}),
          ...(opts.into ? { into: opts.into } : {}),
          sources: opts.source,
          ...(opts.database ? { database: opts.database } : {}),
          clean: Boolean(opts.clean),
          force: Boolean(opts.force),
          preserveOwner: Boolean(opts.preserveOwner),
          ...(opts.from ? { from: opts.from } : {}),
        });
        if (opts.json) return printJson(result);
        for (const r of result.restored) print(`restored ${r.file} -> ${'path' in r ? r.path : r.into}`);
      });
    });

  program
    .command('verify')
    .description('re-read artifacts: size, sha256, decoding, and each source\'s own checks')
    .argument('[snapshot]', 'a snapshot id or "latest"', 'latest')
    .option('--all', 'verify every snapshot')
    .option('--from <dest>', 'verify a destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: { all?: boolean; from?: string; json?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const result = await engine.verify({ snapshot, all: Boolean(opts.all), ...(opts.from ? { from: opts.from } : {}) });
        if (opts.json) printJson(result);
        else {
          for (const s of result.snapshots) {
            if (s.error) print(`FAILED ${s.id}: ${s.error}`);
            for (const a of s.artifacts) print(`${a.ok ? 'ok    ' : 'FAILED'} ${s.id}/${a.file}${a.ok ? '' : `: ${a.error ?? a.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail ?? 'failed'}`).join('; ')}`}`);
          }
        }
        exitCode = result.ok ? ExitCode.ok : ExitCode.failed;
      });
    });

  program
    .command('prune')
    .description('delete snapshots the retention policies no longer keep')
    .option('--dry-run', 'say what would be deleted, delete nothing')
    .option('--from <dest>', 'prune only this destination (default: backupRoot and every destination)')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { dryRun?: boolean; from?: string; json?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const results = await engine.prune({ dryRun: Boolean(opts.dryRun), ...(opts.from ? { from: opts.from } : {}) });
        if (opts.json) return printJson(results);
        for (const r of results) {
          const would = (done: string, planned: string) => (r.dryRun ? planned : done);
          print(`${r.repository}: ${would('kept', 'would keep')} ${r.kept.length}, ${would('removed', 'would remove')} ${r.removed.length}${r.orphans ? `, ${would('removed', 'would remove')} ${r.orphans} incomplete snapshot(s)` : ''}`);
          for (const d of r.removed) print(`  - ${d.id}`);
          for (const i of r.incomplete) print(`  ${i.removed ? '-' : ' '} ${i.id}: incomplete (${i.state} since ${i.since})${i.removed ? '' : ', waiting 24 h before removing it'}`);
          for (const sus of r.suspects) print(`  ! ${sus.id}: suspect, kept (${sus.kind}: ${loaded().suspectReason(sus)})`);
          for (const f of r.foreign) print(`  ? snapshots/${f.id}/: no manifest and no marker of this tool (${f.objects} object(s)): left alone`);
        }
      });
    });

  program
    .command('forget')
    .description('delete one snapshot (a suspect that failed verification, say): the full id, from backupRoot or --from DEST')
    .argument('<snapshot>', 'the full snapshot id (no prefix, no "latest": the deletion cannot be undone)')
    .option('--from <dest>', 'delete it from this destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: { from?: string; json?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const result = await engine.forget({ snapshot, ...(opts.from ? { from: opts.from } : {}) });
        if (opts.json) return printJson(result);
        print(`forgot ${result.id} at ${result.repository}${result.suspect ? ` (it was suspect: ${result.suspect.kind}: ${loaded().suspectReason(result.suspect)})` : ''}`);
      });
    });

  program
    .command('restore-test')
    .description('restore a snapshot into a sandbox and check it')
    .argument('[snapshot]', 'a snapshot id or "latest"', 'latest')
    .option('--from <dest>', 'test a destination\'s copy')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: { from?: string; json?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const result = await engine.restoreTest({ snapshot, ...(opts.from ? { from: opts.from } : {}) });
        if (opts.json) printJson(result);
        else {
          for (const a of result.artifacts) {
            print(`${a.ok ? 'ok    ' : 'FAILED'} ${result.snapshot}/${a.file}`);
            if (a.error) print(`    ${a.error}`);
            for (const c of a.checks) if (!c.ok || !a.ok) print(`    ${c.ok ? 'ok' : 'FAILED'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
          }
        }
        exitCode = result.ok ? ExitCode.ok : ExitCode.failed;
      });
    });

  program
    .command('status')
    .description('health: freshness, last run, storage, verification, replication, restore tests, 3-2-1')
    .option('--notify', 'alert the notify channels about each health condition that began or cleared since the last --notify (for cron or a systemd timer)')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { json?: boolean; notify?: boolean }, command: Command) => {
      await withEngine(command, async (engine) => {
        const status = await engine.status({ notify: Boolean(opts.notify) });
        if (opts.json) printJson(status);
        else {
          print(`${status.healthy ? 'healthy' : 'UNHEALTHY'}: ${status.snapshots} snapshot(s)${status.latest ? `, latest ${status.latest}` : ''}`);
          for (const c of status.checks) print(`  ${c.ok ? (c.warning ? 'WARN' : 'ok  ') : 'FAIL'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
          for (const sus of status.suspects) print(`  suspect ${sus.id} at ${sus.repository}: ${sus.kind}: ${loaded().suspectReason(sus)} (verified ${sus.at})`);
          for (const f of status.foreign) print(`  note: snapshots/${f.id}/ at ${f.repository} has no manifest and no marker of this tool: left alone`);
          const s = status.strategy;
          print(`  3-2-1: ${s.copies} cop${s.copies === 1 ? 'y' : 'ies'}, ${s.media} medi${s.media === 1 ? 'um' : 'a'}, ${s.offsite ? 'one off site' : 'none off site'}${s.compliant ? '' : ' (not compliant)'}`);
          for (const change of status.changes ?? []) print(`  ${change.state === 'begin' ? 'began' : 'cleared'}: ${change.name}`);
          for (const n of status.notifications ?? []) if (n.status === 'failed') print(`  notification ${n.channel} not delivered: ${n.error}`);
        }
        exitCode = status.healthy ? ExitCode.ok : ExitCode.failed;
      });
    });

  const config = program.command('config').description('check or print the configuration');
  config
    .command('validate')
    .description('load the rc file and every plugin, and check all options')
    .action(async (_opts: unknown, command: Command) => {
      await withEngine(command, async (engine) => {
        print(`ok: ${engine.config.file ?? '(inline config)'}: ${engine.config.sources.length} source(s), ${engine.config.destinations.length} destination(s), ${engine.config.notifiers.length} notifier(s)`);
        const missing = engine.config.encryptionSecretsMissing;
        if (missing) print(`note: ${loaded().encryptionNotChecked(missing)}`);
      });
    });
  config
    .command('show')
    .description('print the configuration after ${VAR} interpolation, secrets masked')
    .action(async (_opts: unknown, command: Command) => {
      const globals = command.optsWithGlobals() as GlobalOptions;
      const { loadConfig, maskSecretKeys, secrets } = loaded();
      const config = await loadConfig({ cwd: io.cwd, ...(globals.config ? { configPath: globals.config } : {}), env: io.env, resolveFrom: [here], deferEncryptionSecrets: true });
      printJson({ file: config.file, backupRoot: config.backupRoot, host: config.host, config: maskSecretKeys(config.raw, secrets) });
    });

  program
    .command('init')
    .description('write a starter .sutazai-backuprc in the working directory')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: { force?: boolean }) => {
      const file = path.join(io.cwd, '.sutazai-backuprc');
      if (existsSync(file) && !opts.force) throw new BackupError('E_USAGE', `${file} already exists (use --force to overwrite)`);
      await loaded().writeFileAtomic(file, STARTER_RC);
      print(`wrote ${file}: edit sources and backupRoot, then run \`sutazai-backup config validate\``);
    });

  registerScheduling(program, context);
  program
    .command('metrics')
    .description('print health metrics in Prometheus text format (for node_exporter\'s textfile collector)')
    .action(async (_opts: unknown, command: Command) => {
      const { prometheusMetrics } = await import('./metrics.js');
      await withEngine(command, async (engine) => {
        io.stdout.write(await prometheusMetrics(engine));
      });
    });
  program
    .command('serve')
    .description('serve /metrics (Prometheus) and /healthz over HTTP until stopped')
    .option('--listen <host:port>', 'where to listen', '127.0.0.1:9469')
    .action(async (opts: { listen: string }, command: Command) => {
      const { serveMetrics } = await import('./serve.js');
      await withEngine(command, async (engine, log) => {
        const m = /^(.*):(\d+)$/.exec(opts.listen);
        if (!m) throw new BackupError('E_USAGE', `--listen ${opts.listen}: expected host:port, like 127.0.0.1:9469`);
        await serveMetrics(engine, log, m[1]!, Number(m[2]), (address) => print(`serving http://${address}/metrics`));
      });
    });

  registerDaemon(program, context);

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      // A script that asked for JSON gets its one document on stdout, usage errors included.
      if (argv.includes('--json')) printJson({ error: { code: 'E_USAGE', message: err.message.replace(/^error: /, '') } });
      return ExitCode.usage;
    }
    const wantsJson = argv.includes('--json');
    const redact = (text: string) => (core ? core.secrets.redact(text) : text);
    const message = redact(describeError(err));
    if (wantsJson) printJson({ error: isBackupError(err) ? err.toJSON() : { code: 'E_INTERNAL', message } });
    if (logger && !(err instanceof ConfigError)) logger.error(message);
    else io.stderr.write(`error: ${message}\n`);
    if (!isBackupError(err) && err instanceof Error && err.stack) io.stderr.write(redact(err.stack) + '\n');
    return exitCodeOf(err);
  }
  return exitCode;
}

function describeError(err: unknown): string {
  if (isBackupError(err)) {
    const where = err.plugin && !err.message.startsWith(err.plugin) ? `${err.plugin}${err.stage ? ` (${err.stage})` : ''}: ` : '';
    return `${where}${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
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

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function defaultIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), env: process.env };
}

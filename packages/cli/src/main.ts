import { Command, CommanderError, Option } from 'commander';
import { ConfigError, ExitCode, exitCodeOf, isBackupError } from '@sutazai/backup-core/errors';
import { registerConfigCommands } from './commands/config.js';
import { registerInitCommand } from './commands/init.js';
import { registerListCommand } from './commands/list.js';
import { registerLsCommand } from './commands/ls.js';
import { registerMetricsCommands } from './commands/metrics.js';
import { registerPruneCommands } from './commands/prune.js';
import { registerRecoverCommand } from './commands/recover.js';
import { registerReportCommand } from './commands/report.js';
import { registerRestoreTestCommand } from './commands/restore-test.js';
import { registerRestoreCommand } from './commands/restore.js';
import { registerRunCommand } from './commands/run.js';
import { registerStatusCommand } from './commands/status.js';
import { registerVerifyCommand } from './commands/verify.js';
import { registerDaemon } from './daemon.js';
import { registerScheduling } from './scheduling-commands.js';
import { coreIfLoaded, createCliContext, loadCore, versions, type CliContext, type Io } from './context.js';

export type { Io } from './context.js';

/**
 * The command modules, in the order `--help` lists them. A command (or a group of them) is a
 * module in commands/ that exports `register<Name>Command(program, cli)`; it adds itself to
 * `program` and does its work through `cli` (see context.ts). Add a new one here.
 */
const COMMANDS: ((program: Command, cli: CliContext) => void)[] = [
  registerRunCommand,
  registerListCommand,
  registerLsCommand,
  registerRestoreCommand,
  registerRecoverCommand,
  registerVerifyCommand,
  registerPruneCommands,
  registerRestoreTestCommand,
  registerStatusCommand,
  registerReportCommand,
  registerConfigCommands,
  registerInitCommand,
  registerScheduling,
  registerMetricsCommands,
  registerDaemon,
];

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const cli = createCliContext(io);
  const program = createProgram(io);
  for (const register of COMMANDS) register(program, cli);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    return reportFailure(err, argv, cli);
  }
  return cli.exitCode;
}

/** The program with its global options; core is loaded before the first action, not before. */
function createProgram(io: Io): Command {
  const { cli: cliVersion, core: coreVersion } = versions();
  return new Command()
    .name('sutazai-backup')
    .description('Plugin-based backups for self-hosted AI platforms: run, verify, replicate, restore.')
    .version(`${cliVersion} (core ${coreVersion})`, '--version', 'print the version')
    .option('--config <file>', 'the rc file (default: search for .sutazai-backuprc from the working directory)')
    .addOption(new Option('--log-level <level>', 'how much to log on stderr').choices(['debug', 'info', 'warn', 'error', 'silent']))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .hook('preAction', async () => {
      await loadCore();
    });
}

/** The exit code of a failed command; a script that asked for JSON gets its one document on stdout, usage errors included. */
function reportFailure(err: unknown, argv: string[], cli: CliContext): number {
  const wantsJson = argv.includes('--json');
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    if (wantsJson) cli.printJson({ error: { code: 'E_USAGE', message: err.message.replace(/^error: /, '') } });
    return ExitCode.usage;
  }
  const core = coreIfLoaded();
  const redact = (text: string) => (core ? core.secrets.redact(text) : text);
  const message = redact(describeError(err));
  if (wantsJson) cli.printJson({ error: isBackupError(err) ? err.toJSON() : { code: 'E_INTERNAL', message } });
  if (cli.logger && !(err instanceof ConfigError)) cli.logger.error(message);
  else cli.io.stderr.write(`error: ${message}\n`);
  if (!isBackupError(err) && err instanceof Error && err.stack) cli.io.stderr.write(redact(err.stack) + '\n');
  return exitCodeOf(err);
}

function describeError(err: unknown): string {
  if (isBackupError(err)) {
    const where = err.plugin && !err.message.startsWith(err.plugin) ? `${err.plugin}${err.stage ? ` (${err.stage})` : ''}: ` : '';
    return `${where}${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function defaultIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), env: process.env };
}

import path from 'node:path';
import type { Command } from 'commander';
import type { Engine } from '@sutazai/backup-core';
import { CLI_DIR, type CliContext } from '../context.js';

/** `schedule` (crontab lines) and `systemd print` (units) for the profiles' schedules. */
export function registerScheduleCommands(program: Command, cli: CliContext): void {
  const invocation = (engine: Engine) => ({
    command: [process.execPath, path.join(CLI_DIR, 'bin.js')],
    configFile: engine.config.file ?? path.resolve(cli.io.cwd, '.sutazai-backuprc'),
  });
  program
    .command('schedule')
    .description("print crontab lines for the profiles' schedules and the restore test")
    .action(async (_opts: unknown, command: Command) => {
      // Modules only some commands need are loaded by those commands: every command starts faster.
      const { crontab } = await import('../scheduling.js');
      await cli.withEngine(command, async (engine) => cli.print(crontab(engine.config, invocation(engine))));
    });
  program
    .command('systemd')
    .description('systemd units for the schedules')
    .command('print')
    .description('print a service and a timer for each scheduled profile and the restore test')
    .action(async (_opts: unknown, command: Command) => {
      const { systemdUnits } = await import('../scheduling.js');
      await cli.withEngine(command, async (engine) => cli.print(systemdUnits(engine.config, invocation(engine))));
    });
}

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Engine } from '@sutazai/backup-core';
import type { CommandContext } from './command-context.js';
import type { SetupFlags } from './unattended-setup.js';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bin.js');

const collect = (value: string, previous: string[]) => [...previous, value];

/** The options `schedule` and `systemd print` share; each overrides the rc file's `scheduling:` key. */
function setupOptions(command: Command): Command {
  return command
    .option('--user <name>', 'run as this user (User= of the units; the user field of --system cron lines); rc: scheduling.user')
    .option('--env-file <file>', 'NAME=value lines (mode 0600) for the rc file\'s ${VAR}s: sourced by cron lines, EnvironmentFile= of units; rc: scheduling.envFile')
    .option('--credential <NAME[=PATH]>', 'a LoadCredential= for ${NAME} (default path /etc/credstore/NAME); repeatable; rc: scheduling.credentials', collect, [])
    .option('--wait <duration>', 'how long a scheduled run waits for the lock another run holds (default 6h); rc: scheduling.wait');
}

/** `schedule`, `systemd print` and `systemd on-failure`: cron and systemd set-ups for unattended runs. */
export function registerScheduling(program: Command, ctx: CommandContext): void {
  // Modules only these commands need are loaded by them: every command starts faster.
  const setupFor = async (engine: Engine, flags: SetupFlags) => {
    const { unattendedSetup } = await import('./unattended-setup.js');
    return unattendedSetup(engine.config, flags, [process.execPath, BIN], ctx.io.cwd);
  };

  setupOptions(program.command('schedule'))
    .description('print crontab lines for the scheduled profiles, the restore test and the health check')
    .option('--system', 'the /etc/cron.d format (a file of its own, with the user field)')
    .action(async (opts: SetupFlags & { system?: boolean }, command: Command) => {
      const { crontab, cronEnvFile } = await import('./scheduling.js');
      const { exposure } = await import('./unit-failure.js');
      await ctx.withEngine(command, async (engine, logger) => {
        const setup = await setupFor(engine, opts);
        const envFileExposed = await exposure(cronEnvFile(setup));
        if (envFileExposed) logger.warn(envFileExposed);
        ctx.print(crontab(setup, { system: Boolean(opts.system), ...(envFileExposed ? { envFileExposed } : {}) }));
      });
    });

  const systemd = program.command('systemd').description('systemd units for unattended runs');
  setupOptions(systemd.command('print'))
    .description('print a service and a timer for each scheduled job (or, with --daemon, the daemon\'s service), and the failure handler')
    .option('--daemon', 'the daemon\'s service instead of one timer per job')
    .option('--listen <host:port>', 'with --daemon: serve /metrics and /healthz there')
    .action(async (opts: SetupFlags & { daemon?: boolean; listen?: string }, command: Command) => {
      const { systemdUnits } = await import('./systemd-units.js');
      await ctx.withEngine(command, async (engine) => {
        const setup = await setupFor(engine, opts);
        ctx.print(systemdUnits(setup, { daemon: Boolean(opts.daemon), ...(opts.listen ? { listen: opts.listen } : {}) }));
      });
    });
  systemd
    .command('on-failure')
    .description('(OnFailure= handler) alert the notify channels that a unit failed, unless the run already did')
    .argument('<unit>', 'the unit that failed (%i of sutazai-backup-failure@.service)')
    .action(async (unit: string, _opts: unknown, command: Command) => {
      const { alertUnitFailure } = await import('./unit-failure.js');
      await ctx.withEngine(command, async (engine, logger) => {
        ctx.print(await alertUnitFailure(engine, logger, unit, ctx.io.env));
      });
    });
}

import type { Command } from 'commander';
import type { CommandContext } from './command-context.js';

/**
 * `daemon`: runs every scheduled job at its time, one at a time, until SIGTERM; with `--listen`
 * also serves what `serve` does. The work is in daemon-run.ts, loaded when the command runs.
 */
export function registerDaemon(program: Command, ctx: CommandContext): void {
  program
    .command('daemon')
    .description('run the scheduled profiles, the restore test and the health check at their times, queueing and catching up, until stopped')
    .option('--listen <host:port>', 'also serve /metrics and /healthz there (what `serve` does)')
    .action(async (opts: { listen?: string }, command: Command) => {
      const { runDaemon } = await import('./daemon-run.js');
      const { logLevel } = command.optsWithGlobals() as { logLevel?: string };
      await ctx.withEngine(command, (engine, logger) =>
        runDaemon(engine, logger, {
          env: ctx.io.env,
          ...(opts.listen ? { listen: opts.listen } : {}),
          ...(logLevel ? { logLevel } : {}),
          onListening: (address) => ctx.print(`serving http://${address}/metrics`),
        }),
      );
    });
}

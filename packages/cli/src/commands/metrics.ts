import type { Command } from 'commander';
import { BackupError } from '@sutazai/backup-core/errors';
import type { CliContext } from '../context.js';

/** `metrics` (Prometheus text on stdout) and `serve` (the same over HTTP, with /healthz). */
export function registerMetricsCommands(program: Command, cli: CliContext): void {
  program
    .command('metrics')
    .description("print health metrics in Prometheus text format (for node_exporter's textfile collector)")
    .action(async (_opts: unknown, command: Command) => {
      const { prometheusMetrics } = await import('../metrics.js');
      await cli.withEngine(command, async (engine) => {
        cli.io.stdout.write(await prometheusMetrics(engine));
      });
    });
  program
    .command('serve')
    .description('serve /metrics (Prometheus) and /healthz over HTTP until stopped')
    .option('--listen <host:port>', 'where to listen', '127.0.0.1:9469')
    .action(async (opts: { listen: string }, command: Command) => {
      const { serveMetrics } = await import('../serve.js');
      await cli.withEngine(command, async (engine, log) => {
        const m = /^(.*):(\d+)$/.exec(opts.listen);
        if (!m) throw new BackupError('E_USAGE', `--listen ${opts.listen}: expected host:port, like 127.0.0.1:9469`);
        await serveMetrics(engine, log, m[1]!, Number(m[2]), (address) => cli.print(`serving http://${address}/metrics`));
      });
    });
}

import { InvalidArgumentError, type Command } from 'commander';
import type { HistoryReport } from '@sutazai/backup-core';
import type { CliContext } from '../context.js';

/** `report`: a summary of the run history over the last N days. */
export function registerReportCommand(program: Command, cli: CliContext): void {
  program
    .command('report')
    .description('summarize the run history: runs, failures, missed runs, bytes stored per profile; replications; restore tests')
    .option('--days <n>', 'the last N days (default 7)', wholeDays, 7)
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { days: number; json?: boolean }, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const report = await engine.report({ days: opts.days });
        if (opts.json) return cli.printJson(report);
        cli.print(formatReport(report, cli.core().formatBytes));
      });
    });
}

function wholeDays(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('expected a whole number of days, 1 or more');
  return Number(value);
}

function formatReport(r: HistoryReport, formatBytes: (n: number) => string): string {
  const lines = [`report: the last ${r.days} day(s), ${r.since} to ${r.until}`, ''];
  for (const p of r.profiles) {
    const last = p.lastSuccess ? `last success ${p.lastSuccess.at}` : 'never succeeded';
    lines.push(`profile ${p.profile}: ${p.runs} run(s), ${p.successes} ok, ${p.failures} failed (${p.missed} missed), ${formatBytes(p.bytesStored)} stored; ${last}`);
  }
  for (const d of r.destinations) {
    const failure = d.lastFailure ? `; last failure ${d.lastFailure.at}${d.lastFailure.error ? `: ${d.lastFailure.error}` : ''}` : '';
    lines.push(`destination ${d.destination}: ${d.replications} replication(s), ${d.ok} ok, ${d.failed} failed${d.lastOk ? `; last ok ${d.lastOk}` : ''}${failure}`);
  }
  const t = r.restoreTests;
  const lastTest = t.last ? `; last ${t.last.status} at ${t.last.at} (${t.last.snapshot ?? 'no snapshot'} from ${t.last.repository ?? 'backupRoot'})` : '';
  lines.push(`restore tests: ${t.runs}, ${t.successes} ok, ${t.failures} failed${lastTest}`);
  return lines.join('\n');
}

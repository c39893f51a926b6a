import type { Command } from 'commander';
import { ExitCode } from '@sutazai/backup-core/errors';
import type { Engine } from '@sutazai/backup-core';
import type { CliContext } from '../context.js';

/** `status`: the health checks, the 3-2-1 count, and with `--notify` alerts on what changed. */
export function registerStatusCommand(program: Command, cli: CliContext): void {
  program
    .command('status')
    .description('health: freshness per profile, last run, storage, verification, replication, restore tests, 3-2-1, offsite lag')
    .option('--notify', 'alert the notify channels about each health condition that began or cleared since the last --notify (for cron or a systemd timer)')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { json?: boolean; notify?: boolean }, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const status = await engine.status({ notify: Boolean(opts.notify) });
        if (opts.json) cli.printJson(status);
        else printStatus(cli, status);
        cli.exitCode = status.healthy ? ExitCode.ok : ExitCode.failed;
      });
    });
}

function printStatus(cli: CliContext, status: Awaited<ReturnType<Engine['status']>>): void {
  const print = cli.print;
  print(`${status.healthy ? 'healthy' : 'UNHEALTHY'}: ${status.snapshots} snapshot(s)${status.latest ? `, latest ${status.latest}` : ''}`);
  if (status.partial) print(`  latest snapshot is partial: without ${status.partial.failedSources.join(', ')} (failed in its run)`);
  for (const c of status.checks) print(`  ${c.ok ? (c.warning ? 'WARN' : 'ok  ') : 'FAIL'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
  for (const sus of status.suspects) print(`  suspect ${sus.id} at ${sus.repository}: ${sus.kind}: ${cli.core().suspectReason(sus)} (verified ${sus.at})`);
  for (const f of status.foreign) print(`  note: snapshots/${f.id}/ at ${f.repository} has no manifest and no marker of this tool: left alone`);
  const s = status.strategy;
  const media = `${s.media} medi${s.media === 1 ? 'um' : 'a'}`;
  print(`  3-2-1: ${s.copies} cop${s.copies === 1 ? 'y' : 'ies'}, ${media}, ${s.offsite ? 'one off site' : 'none off site'}${s.compliant ? '' : ' (not compliant)'}`);
  for (const change of status.changes ?? []) print(`  ${change.state === 'begin' ? 'began' : 'cleared'}: ${change.name}`);
  for (const n of status.notifications ?? []) if (n.status === 'failed') print(`  notification ${n.channel} not delivered: ${n.error}`);
}

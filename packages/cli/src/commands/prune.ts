import type { Command } from 'commander';
import type { Engine } from '@sutazai/backup-core';
import { fromOption, type CliContext } from '../context.js';

/** `prune` (what the retention policies no longer keep) and `forget` (one snapshot by its id). */
export function registerPruneCommands(program: Command, cli: CliContext): void {
  program
    .command('prune')
    .description('delete snapshots the retention policies no longer keep')
    .option('--dry-run', 'say what would be deleted, delete nothing')
    .option('--from <dest>', 'prune only this destination (default: backupRoot and every destination)')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { dryRun?: boolean; from?: string; json?: boolean }, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const results = await engine.prune({ dryRun: Boolean(opts.dryRun), ...fromOption(opts.from) });
        if (opts.json) return cli.printJson(results);
        for (const r of results) printPrune(cli, r);
      });
    });

  program
    .command('forget')
    .description('delete one snapshot (a suspect that failed verification, say): the full id, from backupRoot or --from DEST')
    .argument('<snapshot>', 'the full snapshot id (no prefix, no "latest": the deletion cannot be undone)')
    .option('--from <dest>', 'delete it from this destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: { from?: string; json?: boolean }, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const result = await engine.forget({ snapshot, ...fromOption(opts.from) });
        if (opts.json) return cli.printJson(result);
        const suspect = result.suspect ? ` (it was suspect: ${result.suspect.kind}: ${cli.core().suspectReason(result.suspect)})` : '';
        cli.print(`forgot ${result.id} at ${result.repository}${suspect}`);
      });
    });
}

function printPrune(cli: CliContext, r: Awaited<ReturnType<Engine['prune']>>[number]): void {
  const would = (done: string, planned: string) => (r.dryRun ? planned : done);
  const orphans = r.orphans ? `, ${would('removed', 'would remove')} ${r.orphans} incomplete snapshot(s)` : '';
  cli.print(`${r.repository}: ${would('kept', 'would keep')} ${r.kept.length}, ${would('removed', 'would remove')} ${r.removed.length}${orphans}`);
  for (const d of r.removed) cli.print(`  - ${d.id}`);
  for (const i of r.incomplete) {
    cli.print(`  ${i.removed ? '-' : ' '} ${i.id}: incomplete (${i.state} since ${i.since})${i.removed ? '' : ', waiting 24 h before removing it'}`);
  }
  for (const sus of r.suspects) cli.print(`  ! ${sus.id}: suspect, kept (${sus.kind}: ${cli.core().suspectReason(sus)})`);
  for (const f of r.foreign) cli.print(`  ? snapshots/${f.id}/: no manifest and no marker of this tool (${f.objects} object(s)): left alone`);
}

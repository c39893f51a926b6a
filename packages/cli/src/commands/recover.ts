import path from 'node:path';
import type { Command } from 'commander';
import type { RecoveryResult } from '@sutazai/backup-core';
import type { CliContext } from '../context.js';

interface RecoverOptions {
  from: string;
  to?: string;
  plan?: boolean;
  force?: boolean;
  json?: boolean;
}

/** `recover --from DEST`: disaster recovery when backupRoot is gone. */
export function registerRecoverCommand(program: Command, cli: CliContext): void {
  program
    .command('recover')
    .description('disaster recovery: restore the newest snapshot of every source from a destination, configuration first, under --to DIR')
    .requiredOption('--from <dest>', 'the destination to recover from')
    .option('--to <dir>', 'restore under DIR/<source>/')
    .option('--plan', 'print what would be restored, from which snapshot, to where and in what order; write nothing')
    .option('--force', 'overwrite a non-empty DIR/<source>')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: RecoverOptions, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const result = await engine.recover({
          from: opts.from,
          ...(opts.to ? { to: path.resolve(cli.io.cwd, opts.to) } : {}),
          plan: Boolean(opts.plan),
          force: Boolean(opts.force),
        });
        // Something the destination does not hold was not recovered: say so with the exit code.
        if (!result.complete) cli.exitCode = 1;
        if (opts.json) return cli.printJson(result);
        cli.print(describe(result));
      });
    });
}

function describe(r: RecoveryResult): string {
  const head = r.plan ? `recovery plan from ${r.from}${r.to ? ` to ${r.to}` : ''} (nothing written):` : `recovered from ${r.from} to ${r.to}:`;
  const steps = r.steps.map((s) => {
    const what = s.snapshot ? `${s.snapshot} -> ${s.target ?? '(no target)'}` : '(no snapshot)';
    return `${String(s.order).padStart(2)}. [${s.phase}] ${s.source} (${s.plugin}): ${what}${s.note ? `  # ${s.note}` : ''}`;
  });
  return [head, ...steps].join('\n');
}

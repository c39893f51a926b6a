import type { Command } from 'commander';
import { ExitCode } from '@sutazai/backup-core/errors';
import { fromOption, type CliContext } from '../context.js';

/** `restore-test`: restores a snapshot into a sandbox and runs each source's checks on it. */
export function registerRestoreTestCommand(program: Command, cli: CliContext): void {
  program
    .command('restore-test')
    .description('restore a snapshot into a sandbox and check it')
    .argument('[snapshot]', 'a snapshot id or "latest"', 'latest')
    .option('--from <dest>', "test a destination's copy")
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: { from?: string; json?: boolean }, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const result = await engine.restoreTest({ snapshot, ...fromOption(opts.from) });
        if (opts.json) cli.printJson(result);
        else {
          for (const a of result.artifacts) {
            cli.print(`${a.ok ? 'ok    ' : 'FAILED'} ${result.snapshot}/${a.file}`);
            if (a.error) cli.print(`    ${a.error}`);
            for (const c of a.checks) if (!c.ok || !a.ok) cli.print(`    ${c.ok ? 'ok' : 'FAILED'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
          }
        }
        cli.exitCode = result.ok ? ExitCode.ok : ExitCode.failed;
      });
    });
}

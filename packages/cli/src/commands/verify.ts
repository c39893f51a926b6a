import type { Command } from 'commander';
import { ExitCode } from '@sutazai/backup-core/errors';
import { fromOption, type CliContext } from '../context.js';

/** `verify`: re-reads artifacts and runs each source's own checks. */
export function registerVerifyCommand(program: Command, cli: CliContext): void {
  program
    .command('verify')
    .description("re-read artifacts: size, sha256, decoding, and each source's own checks")
    .argument('[snapshot]', 'a snapshot id or "latest"', 'latest')
    .option('--all', 'verify every snapshot')
    .option('--from <dest>', 'verify a destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: { all?: boolean; from?: string; json?: boolean }, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const result = await engine.verify({ snapshot, all: Boolean(opts.all), ...fromOption(opts.from) });
        if (opts.json) cli.printJson(result);
        else {
          for (const s of result.snapshots) {
            if (s.error) cli.print(`FAILED ${s.id}: ${s.error}`);
            for (const a of s.artifacts) {
              const why = a.error ?? a.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail ?? 'failed'}`).join('; ');
              cli.print(`${a.ok ? 'ok    ' : 'FAILED'} ${s.id}/${a.file}${a.ok ? '' : `: ${why}`}`);
            }
          }
        }
        cli.exitCode = result.ok ? ExitCode.ok : ExitCode.failed;
      });
    });
}

import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { BackupError } from '@sutazai/backup-core/errors';
import type { CliContext } from '../context.js';
import { STARTER_RC } from '../init.js';

/** `init`: a starter rc file in the working directory. */
export function registerInitCommand(program: Command, cli: CliContext): void {
  program
    .command('init')
    .description('write a starter .sutazai-backuprc in the working directory')
    .option('--force', 'overwrite an existing file')
    .action(async (opts: { force?: boolean }) => {
      const file = path.join(cli.io.cwd, '.sutazai-backuprc');
      if (existsSync(file) && !opts.force) throw new BackupError('E_USAGE', `${file} already exists (use --force to overwrite)`);
      await cli.core().writeFileAtomic(file, STARTER_RC);
      cli.print(`wrote ${file}: edit sources and backupRoot, then run \`sutazai-backup config validate\``);
    });
}

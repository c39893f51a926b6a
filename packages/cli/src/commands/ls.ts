import type { Command } from 'commander';
import type { LsEntry } from '@sutazai/backup-core';
import { collect, fromOption, type CliContext } from '../context.js';

interface LsCommandOptions {
  source: string[];
  from?: string;
  json?: boolean;
}

/** `ls`: the entries inside a snapshot, as restore would write them under DIR/<source>/. */
export function registerLsCommand(program: Command, cli: CliContext): void {
  program
    .command('ls')
    .description('list the entries inside a snapshot (paths as restore writes them under DIR/<source>/)')
    .argument('<snapshot>', 'a snapshot id (or a unique prefix), or "latest"')
    .argument('[path]', 'only the entries at or under this path')
    .option('--source <name>', 'only this source (repeatable)', collect, [])
    .option('--from <dest>', 'read from a destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, entryPath: string | undefined, opts: LsCommandOptions, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const result = await engine.ls({ snapshot, sources: opts.source, ...(entryPath !== undefined ? { path: entryPath } : {}), ...fromOption(opts.from) });
        if (opts.json) return cli.printJson(result);
        cli.print(result.entries.map(line).join('\n') || '(no entries)');
      });
    });
}

/** `drwxr-xr-x  4096  2026-11-26T02:00:00Z  configs/etc/app -> target`, as `ls -l` would show it. */
function line(e: LsEntry): string {
  const kind = { file: '-', directory: 'd', symlink: 'l', hardlink: 'h', other: '?' }[e.type];
  const mode = e.mode === null ? '---------' : permissions(e.mode);
  const mtime = e.mtime ? e.mtime.replace(/\.\d+Z$/, 'Z') : '-';
  const target = e.linkTarget ? ` -> ${e.linkTarget}` : '';
  return `${kind}${mode}  ${String(e.size).padStart(12)}  ${mtime.padEnd(20)}  ${e.source}/${e.path}${target}`;
}

function permissions(mode: number): string {
  return [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((c, i) => ((mode >> shift) & (4 >> i) ? c : '-')).join('')).join('');
}

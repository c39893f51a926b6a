import path from 'node:path';
import type { Command } from 'commander';
import { collect, fromOption, type CliContext } from '../context.js';

interface RestoreOptions {
  to?: string;
  into?: string;
  source: string[];
  path: string[];
  database?: string;
  clean?: boolean;
  force?: boolean;
  preserveOwner?: boolean;
  from?: string;
  json?: boolean;
}

/** `restore`: a snapshot into a folder (`--to`), or a database source into a server (`--into`). */
export function registerRestoreCommand(program: Command, cli: CliContext): void {
  program
    .command('restore')
    .description('restore a snapshot into a folder (--to) or a database source into a server (--into)')
    .argument('<snapshot>', 'a snapshot id (or a unique prefix), or "latest"')
    .option('--to <dir>', 'restore under DIR/<source>/')
    .option('--into <url>', 'restore a database source into this server')
    .option('--source <name>', 'restore only this source (repeatable)', collect, [])
    .option('--path <path>', 'with --to: only this path of a tree source, as ls shows it (repeatable)', collect, [])
    .option('--database <db>', 'with --into: restore this database of the source into the database the URL names')
    .option('--clean', 'with --into: replace a non-empty target database')
    .option('--force', 'with --to: overwrite a non-empty DIR/<source>')
    .option('--preserve-owner', 'with --to: keep the archived owners (as root)')
    .option('--from <dest>', 'read from a destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (snapshot: string, opts: RestoreOptions, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const result = await engine.restore({
          snapshot,
          ...(opts.to ? { to: path.resolve(cli.io.cwd, opts.to) } : {}),
          ...(opts.into ? { into: opts.into } : {}),
          sources: opts.source,
          ...(opts.path.length ? { paths: opts.path } : {}),
          ...(opts.database ? { database: opts.database } : {}),
          clean: Boolean(opts.clean),
          force: Boolean(opts.force),
          preserveOwner: Boolean(opts.preserveOwner),
          ...fromOption(opts.from),
        });
        if (opts.json) return cli.printJson(result);
        for (const r of result.restored) cli.print(`restored ${r.file} -> ${'path' in r ? r.path : r.into}`);
      });
    });
}

import type { Command } from 'commander';
import type { CliContext } from '../context.js';

/** `config validate`, `config show` and `config schema`. */
export function registerConfigCommands(program: Command, cli: CliContext): void {
  const config = program.command('config').description('check or print the configuration');
  config
    .command('validate')
    .description('load the rc file and every plugin, and check all options')
    .action(async (_opts: unknown, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const c = engine.config;
        cli.print(`ok: ${c.file ?? '(inline config)'}: ${c.sources.length} source(s), ${c.destinations.length} destination(s), ${c.notifiers.length} notifier(s)`);
        if (c.encryptionSecretsMissing) cli.print(`note: ${cli.core().encryptionNotChecked(c.encryptionSecretsMissing)}`);
      });
    });
  config
    .command('show')
    .description('print the configuration after ${VAR} interpolation, secrets masked')
    .action(async (_opts: unknown, command: Command) => {
      const { maskSecretKeys, secrets } = cli.core();
      const loaded = await cli.loadConfig(command);
      cli.printJson({ file: loaded.file, backupRoot: loaded.backupRoot, host: loaded.host, config: maskSecretKeys(loaded.raw, secrets) });
    });
  config
    .command('schema')
    .description("print the rc file's JSON Schema, for editors to check .sutazai-backuprc as it is written")
    .action(() => {
      cli.print(JSON.stringify(cli.core().configJsonSchema(), null, 2));
    });
}

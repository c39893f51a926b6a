import type { Command } from 'commander';
import { fromOption, type CliContext } from '../context.js';

/** `list`: the snapshots of backupRoot or a destination, oldest first. */
export function registerListCommand(program: Command, cli: CliContext): void {
  program
    .command('list')
    .description('list snapshots, oldest first')
    .option('--from <dest>', 'list a destination instead of backupRoot')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { from?: string; json?: boolean }, command: Command) => {
      await cli.withEngine(command, async (engine) => {
        const snapshots = await engine.list(fromOption(opts.from));
        if (opts.json) return cli.printJson(snapshots);
        if (snapshots.length === 0) return cli.print('no snapshots');
        const { formatBytes } = cli.core();
        const rows = snapshots.map((s) => [s.id, s.profile, s.host, s.createdAt, formatBytes(s.bytes), s.artifacts.map((a) => a.source).join(','), s.failedSources.map((f) => f.source).join(',')]);
        // A partial snapshot shows the sources it lacks; the column appears only when one exists.
        const partial = snapshots.some((s) => s.failedSources.length);
        const header = ['ID', 'PROFILE', 'HOST', 'CREATED', 'SIZE', 'ARTIFACTS', ...(partial ? ['FAILED (PARTIAL)'] : [])];
        cli.print(table(header, partial ? rows : rows.map((r) => r.slice(0, -1))));
        for (const s of snapshots) for (const f of s.failedSources) cli.print(`${s.id}: partial: source ${f.source} failed: ${f.message}`);
      });
    });
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

import { constants as osConstants } from 'node:os';
import type { Command } from 'commander';
import { BackupError, ExitCode } from '@sutazai/backup-core/errors';
import type { Engine } from '@sutazai/backup-core';
import { collect, type CliContext } from '../context.js';

/** If a plugin does not return this long after a stop signal, the process exits anyway. */
const STOP_GRACE_MS = 10_000;

interface RunOptions {
  profile?: string;
  only: string[];
  dryRun?: boolean;
  sequential?: boolean;
  parallel?: string;
  wait?: string;
  json?: boolean;
}

/** `run`: one backup of a profile, from collect to notify. */
export function registerRunCommand(program: Command, cli: CliContext): void {
  program
    .command('run')
    .description('back up the sources of a profile: collect, archive, verify, commit, replicate, prune, notify')
    .option('--profile <name>', 'the profile to run (default: the only one, or "default")')
    .option('--only <source>', 'back up only this source (repeatable)', collect, [])
    .option('--dry-run', 'say what would be backed up, write nothing')
    .option('--sequential', 'archive one artifact at a time')
    .option('--parallel <n>', 'archive this many artifacts at once (default: the rc file\'s concurrency)')
    .option('--wait <duration>', 'when another run holds the lock, wait this long for it ("6h"); a run that gives up is recorded and alerted')
    .option('--json', 'print the run report as JSON on stdout')
    .action(async (opts: RunOptions, command: Command) => {
      const parallel = parallelOption(opts);
      await cli.withEngine(command, async (engine) => {
        const stop = stopOnSignals(cli);
        try {
          const { runWaiting } = await import('../run-wait.js');
          const report = await runWaiting(
            engine,
            {
              ...(opts.profile ? { profile: opts.profile } : {}),
              only: opts.only,
              dryRun: Boolean(opts.dryRun),
              sequential: Boolean(opts.sequential),
              ...(parallel !== undefined ? { parallel } : {}),
              signal: stop.signal,
            },
            opts.wait,
          );
          if (opts.json) cli.printJson(report);
          else printReport(cli, report);
          cli.exitCode = stop.stoppedWith() ?? (report.status === 'success' ? ExitCode.ok : ExitCode.failed);
        } finally {
          stop.dispose();
        }
      });
    });
}

/** `--parallel N`: a whole number from 1 to 64, not beside `--sequential`. */
function parallelOption(opts: RunOptions): number | undefined {
  if (opts.parallel === undefined) return undefined;
  if (opts.sequential) throw new BackupError('E_USAGE', '--parallel and --sequential: give one of them (--sequential is --parallel 1)');
  const n = Number(opts.parallel);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new BackupError('E_USAGE', `--parallel ${opts.parallel}: expected a whole number from 1 to 64`);
  return n;
}

/**
 * SIGINT and SIGTERM abort the run. A run stopped by a signal exits as the shell reports a
 * process killed by it (130, 143), once it has cleaned up: a scheduler then tells a stopped run
 * from a failed one.
 */
function stopOnSignals(cli: CliContext): { signal: AbortSignal; stoppedWith(): number | undefined; dispose(): void } {
  const abort = new AbortController();
  let stoppedWith: number | undefined;
  const stop = (signal: NodeJS.Signals) => {
    const code = 128 + (osConstants.signals[signal] ?? 15);
    stoppedWith ??= code;
    cli.logger?.warn(`received ${signal}: stopping; nothing half-written will be committed`);
    abort.abort(new BackupError('E_ABORTED', `interrupted by ${signal}`));
    // A plugin stuck in a hook must not keep the run (and its lock) alive for ever: the
    // lock is released on exit, and the next run cleans what this one staged.
    setTimeout(() => process.exit(code), STOP_GRACE_MS).unref();
    process.once(signal, () => process.exit(code));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: abort.signal,
    stoppedWith: () => stoppedWith,
    dispose() {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
    },
  };
}

function printReport(cli: CliContext, report: Awaited<ReturnType<Engine['run']>>): void {
  if (report.status === 'success') {
    const bytes = report.artifacts.reduce((s, a) => s + a.bytes, 0);
    cli.print(
      report.dryRun
        ? `dry run of profile ${report.profile}: nothing written`
        : `snapshot ${report.snapshot} committed: ${report.artifacts.length} artifact(s), ${cli.core().formatBytes(bytes)}, ${(report.durationMs / 1000).toFixed(1)}s`,
    );
  } else {
    const partial = report.snapshot && report.failedSources.length;
    cli.print(
      partial
        ? `run failed: partial snapshot ${report.snapshot} committed without the failed source(s) ${report.failedSources.map((f) => f.source).join(', ')}:`
        : `run failed${report.snapshot ? ` (snapshot ${report.snapshot} was committed)` : ' (no snapshot committed)'}:`,
    );
    for (const e of report.errors) cli.print(`  ${e.plugin ? `${e.plugin} ` : ''}(${e.stage}) ${e.message}`);
  }
  for (const n of report.notifications) if (n.status === 'failed') cli.print(`  notification ${n.channel} not delivered: ${n.error}`);
}

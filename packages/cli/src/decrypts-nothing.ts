import type { Command } from 'commander';

/**
 * Commands that read no artifact and write no snapshot: they run without the encryption secret
 * (a metrics scrape or a health check needs no passphrase), so an unset `${VAR}` under
 * `encryption` is no error for them. `daemon` is not one: it starts runs, so a missing secret
 * stops it at start rather than failing every job.
 */
const DECRYPT_NOTHING = new Set(['list', 'report', 'status', 'metrics', 'serve', 'config validate', 'config show', 'schedule', 'systemd print', 'systemd on-failure']);

/** `config validate` for its subcommand, `list` for a top-level one. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export function decryptsNothing(command: Command): boolean {
  return DECRYPT_NOTHING.has(commandPath(command));
}

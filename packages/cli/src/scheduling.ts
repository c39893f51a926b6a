import path from 'node:path';
import type { UnattendedJob } from './jobs.js';
import type { UnattendedSetup } from './unattended-setup.js';

/** A word for sh: bare when it is safe, single-quoted otherwise. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./@+=:,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The env file beside the rc file, when the rc file reads `${VAR}`s and none is configured. */
export function cronEnvFile(setup: UnattendedSetup): string | undefined {
  return setup.envFile ?? (setup.variables.length ? path.join(path.dirname(setup.configFile), 'sutazai-backup.env') : undefined);
}

function cronCommand(setup: UnattendedSetup, job: UnattendedJob, envFile: string | undefined): string {
  const program = [...setup.command, ...job.args, '--config', setup.configFile].map(shellQuote).join(' ');
  // `set -a` exports what the file assigns: NAME=value lines, as systemd's EnvironmentFile= reads them too.
  const line = envFile ? `set -a && . ${shellQuote(envFile)} && set +a && exec ${program}` : `exec ${program}`;
  // cron turns an unescaped % into a newline.
  return line.replace(/%/g, '\\%');
}

/**
 * crontab lines for every scheduled job. Each sources the env file (secrets, 0600) before it runs,
 * and runs wait for the lock (`--wait`). `system`: the /etc/cron.d format, with the user field.
 */
export function crontab(setup: UnattendedSetup, options: { system?: boolean; envFileExposed?: string } = {}): string {
  const envFile = cronEnvFile(setup);
  const user = setup.user ?? 'root';
  const lines = [`# sutazai-backup schedule for ${setup.configFile}`];
  if (envFile) {
    lines.push(
      `# Each line first reads ${envFile}: NAME=value lines (${setup.variables.join(', ') || 'the variables your rc file reads'}), in sh syntax`,
      `# (quote values: NAME='va lue'). Make it readable by ${options.system ? user : 'this user'} alone: install -m 0600 /dev/null ${shellQuote(envFile)}`,
    );
    if (options.envFileExposed) lines.push(`# WARNING: ${options.envFileExposed}`);
  }
  if (options.system) {
    lines.push(`# As root, save this as a file of its own (nothing else is replaced): sutazai-backup schedule --system > /etc/cron.d/sutazai-backup`, 'SHELL=/bin/sh');
  } else {
    lines.push(
      '# Add these lines to a crontab without replacing what is there: run `crontab -e` and paste them;',
      '# or, as root, give them a file of their own: sutazai-backup schedule --system > /etc/cron.d/sutazai-backup',
      '# (never `sutazai-backup schedule | crontab -`: that replaces the whole crontab)',
    );
  }
  if (setup.jobs.length === 0) lines.push('# no profile has a schedule: add `schedule: "0 2 * * *"` to a profile');
  for (const j of setup.jobs) lines.push(`${j.schedule} ${options.system ? `${user} ` : ''}${cronCommand(setup, j, envFile)}  # ${j.description}`);
  return lines.join('\n') + '\n';
}

import path from 'node:path';
import { cronToOnCalendar } from '@sutazai/backup-core';
import type { UnattendedJob } from './jobs.js';
import type { UnattendedSetup } from './unattended-setup.js';

const UNIT_DIR = '/etc/systemd/system';
const FAILURE_UNIT = 'sutazai-backup-failure@';
const HOME_DIRS = ['/home', '/root', '/run/user'];
const TMP_DIRS = ['/tmp', '/var/tmp'];

/** One word of a unit file's command line or path list: `%` and `$` are systemd's own, so doubled; quoted when it must be. */
function unitWord(arg: string): string {
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_./@+=:,-]+$/.test(escaped) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const below = (p: string, dirs: string[]) => dirs.some((d) => p === d || p.startsWith(`${d}/`));

/** `specifier`: a systemd specifier (`%i`) to pass as the last argument, unescaped. */
function execLine(setup: UnattendedSetup, args: string[], specifier?: string): string {
  return `ExecStart=${[...setup.command, ...args, '--config', setup.configFile].map(unitWord).join(' ')}${specifier ? ` ${specifier}` : ''}`;
}

/**
 * The [Service] settings every unit shares: who it runs as, where secrets come from, and a
 * sandbox that lets it write only backupRoot and the local destinations.
 */
function serviceSettings(setup: UnattendedSetup): string[] {
  const all = [...setup.writable, ...setup.readable];
  const lines = [...(setup.user ? [`User=${setup.user}`] : [])];
  for (const [name, file] of Object.entries(setup.credentials)) lines.push(`LoadCredential=${name}:${unitWord(file)}`);
  if (setup.envFile) lines.push(`EnvironmentFile=${unitWord(setup.envFile)}`);
  lines.push('UMask=0077', 'Nice=10', 'IOSchedulingClass=best-effort', 'IOSchedulingPriority=7');
  lines.push('NoNewPrivileges=yes', 'ProtectSystem=strict');
  // "-": a folder that is missing (a drive not mounted) does not stop the unit; the run says what is wrong.
  lines.push(`ReadWritePaths=${setup.writable.map((p) => `-${unitWord(p)}`).join(' ')}`);
  if (all.some((p) => below(p, TMP_DIRS))) lines.push('# PrivateTmp= is off: the config uses a path under /tmp or /var/tmp');
  else lines.push('PrivateTmp=yes');
  // Home folders hidden, unless the tool, the rc file or the data live there: then read-only (ReadWritePaths= still writes).
  lines.push(`ProtectHome=${all.some((p) => below(p, HOME_DIRS)) ? 'read-only' : 'yes'}`);
  lines.push('ProtectKernelTunables=yes', 'ProtectKernelModules=yes', 'ProtectControlGroups=yes', 'RestrictSUIDSGID=yes', 'LockPersonality=yes', 'RestrictRealtime=yes');
  return lines;
}

function unitHeader(description: string, onFailure: boolean): string[] {
  return [
    '[Unit]',
    `Description=sutazai-backup: ${description}`,
    'Wants=network-online.target',
    'After=network-online.target',
    ...(onFailure ? [`OnFailure=${FAILURE_UNIT}%n.service`] : []),
  ];
}

function jobUnits(setup: UnattendedSetup, job: UnattendedJob): string[] {
  const unit = `sutazai-backup-${job.name}`;
  const service = [
    `# ${UNIT_DIR}/${unit}.service`,
    ...unitHeader(job.description, true),
    '',
    '[Service]',
    'Type=oneshot',
    execLine(setup, job.args),
    ...serviceSettings(setup),
  ];
  const timer = [
    `# ${UNIT_DIR}/${unit}.timer`,
    '[Unit]',
    `Description=sutazai-backup: ${job.description} (${job.schedule})`,
    '',
    '[Timer]',
    `OnCalendar=${cronToOnCalendar(job.schedule)}`,
    'Persistent=true',
    'RandomizedDelaySec=2min',
    '',
    '[Install]',
    'WantedBy=timers.target',
  ];
  return [service.join('\n'), timer.join('\n')];
}

/** The daemon runs every job itself; stopped, it lets the current run stop cleanly (KillMode=mixed: the signal goes to the daemon, which passes it on once). */
function daemonUnit(setup: UnattendedSetup, listen: string | undefined): string {
  return [
    `# ${UNIT_DIR}/sutazai-backup-daemon.service`,
    ...unitHeader('the scheduler (every scheduled profile, the restore test and the health check)', true),
    '',
    '[Service]',
    'Type=exec',
    execLine(setup, ['daemon', ...(listen ? ['--listen', listen] : [])]),
    'Restart=on-failure',
    'RestartSec=30s',
    'KillMode=mixed',
    'TimeoutStopSec=90s',
    ...serviceSettings(setup),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
  ].join('\n');
}

/** Alerts through the notify channels when a unit failed in a way the tool could not report itself (killed, a config error). */
function failureUnit(setup: UnattendedSetup): string {
  return [
    `# ${UNIT_DIR}/${FAILURE_UNIT}.service`,
    '[Unit]',
    'Description=sutazai-backup: alert that %i failed',
    '',
    '[Service]',
    'Type=oneshot',
    execLine(setup, ['systemd', 'on-failure'], '%i'),
    ...serviceSettings(setup),
  ].join('\n');
}

function preamble(setup: UnattendedSetup): string[] {
  const lines = [`# sutazai-backup units for ${setup.configFile}`];
  const names = Object.keys(setup.credentials);
  if (names.length) {
    lines.push(
      `# Secrets: \${NAME} in the rc file reads the credential NAME ($CREDENTIALS_DIRECTORY/NAME): ${names.join(', ')}.`,
      '# Create each file readable by root alone (systemd hands it to the unit):',
      ...Object.values(setup.credentials).map((f) => `#   install -d -m 0700 ${path.dirname(f)} && install -m 0600 /dev/null ${f}   (then write the secret into it)`),
    );
  }
  if (setup.envFile) lines.push(`# Environment: ${setup.envFile} (NAME=value lines, mode 0600).`);
  if (setup.user) lines.push(`# Runs as ${setup.user}: backupRoot and the local destinations must belong to ${setup.user} (chown -R ${setup.user} ...).`);
  return lines;
}

/** `systemd print`: a oneshot service and a timer per scheduled job, or (`daemon`) the daemon's service; and the failure handler. */
export function systemdUnits(setup: UnattendedSetup, options: { daemon?: boolean; listen?: string } = {}): string {
  const parts = [preamble(setup).join('\n')];
  if (options.daemon) {
    parts.push(daemonUnit(setup, options.listen), failureUnit(setup));
    parts.push('# then: systemctl daemon-reload && systemctl enable --now sutazai-backup-daemon.service   (use the daemon or the timers, not both)');
  } else if (setup.jobs.length === 0) {
    parts.push('# no profile has a schedule: add `schedule: "0 2 * * *"` to a profile');
  } else {
    for (const job of setup.jobs) parts.push(...jobUnits(setup, job));
    parts.push(failureUnit(setup));
    parts.push(`# then: systemctl daemon-reload && systemctl enable --now ${setup.jobs.map((j) => `sutazai-backup-${j.name}.timer`).join(' ')}`);
  }
  return parts.join('\n\n') + '\n';
}

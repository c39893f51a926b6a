import { cronToOnCalendar, type ResolvedConfig } from '@sutazai/backup-core';

export interface Invocation {
  /** The command that runs the CLI: node and the bin script, or the installed `sutazai-backup`. */
  command: string[];
  configFile: string;
}

function quote(arg: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

interface Job {
  name: string;
  schedule: string;
  args: string[];
  description: string;
}

function jobs(config: ResolvedConfig): Job[] {
  const out: Job[] = [];
  for (const p of Object.values(config.profiles)) {
    if (p.schedule) out.push({ name: p.name, schedule: p.schedule, args: ['run', '--profile', p.name], description: `back up profile ${p.name}` });
  }
  const rt = config.checks.restoreTest;
  if (rt?.schedule) {
    out.push({ name: 'restore-test', schedule: rt.schedule, args: ['restore-test', ...(rt.from ? ['--from', rt.from] : [])], description: 'restore test' });
  }
  // Health conditions (a missing backup, a full disk, ...) alert only when something checks them.
  if (config.notifiers.length) {
    out.push({ name: 'health', schedule: '17 * * * *', args: ['status', '--notify'], description: 'check health and alert on changes' });
  }
  return out;
}

/** crontab lines for every scheduled profile and the restore test. */
export function crontab(config: ResolvedConfig, inv: Invocation): string {
  const list = jobs(config);
  const lines = [`# sutazai-backup schedule for ${inv.configFile}`, '# install with: sutazai-backup schedule | crontab -   (or append to your crontab)'];
  if (list.length === 0) lines.push('# no profile has a schedule: add `schedule: "0 2 * * *"` to a profile');
  for (const j of list) {
    lines.push(`${j.schedule} ${[...inv.command, ...j.args, '--config', inv.configFile].map(quote).join(' ')}  # ${j.description}`);
  }
  return lines.join('\n') + '\n';
}

/** A oneshot service template and one timer per scheduled job. */
export function systemdUnits(config: ResolvedConfig, inv: Invocation): string {
  const list = jobs(config);
  const exec = (args: string[]) => [...inv.command, ...args, '--config', inv.configFile].map(quote).join(' ');
  const parts: string[] = [];
  for (const j of list) {
    const unit = `sutazai-backup-${j.name}`;
    parts.push(`# /etc/systemd/system/${unit}.service
[Unit]
Description=sutazai-backup: ${j.description}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=${exec(j.args)}
# 75: another run holds the lock; that run does the work.
SuccessExitStatus=75
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
UMask=0077
`);
    parts.push(`# /etc/systemd/system/${unit}.timer
[Unit]
Description=sutazai-backup: ${j.description} (${j.schedule})

[Timer]
OnCalendar=${cronToOnCalendar(j.schedule)}
Persistent=true
RandomizedDelaySec=2min

[Install]
WantedBy=timers.target
`);
  }
  if (list.length === 0) parts.push('# no profile has a schedule: add `schedule: "0 2 * * *"` to a profile\n');
  else parts.push(`# then: systemctl daemon-reload && systemctl enable --now ${list.map((j) => `sutazai-backup-${j.name}.timer`).join(' ')}\n`);
  return parts.join('\n');
}

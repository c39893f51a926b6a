import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BackupError, schedulingOptions, type ResolvedConfig } from '@sutazai/backup-core';
import { unattendedJobs, type UnattendedJob } from './jobs.js';
import { parseWait } from './run-wait.js';

/** Where `LoadCredential=NAME` finds a credential by default: systemd's own credential store. */
export const CREDSTORE = '/etc/credstore';

/** The command line's options of `schedule` and `systemd print`; each overrides the rc file's `scheduling:`. */
export interface SetupFlags {
  user?: string;
  envFile?: string;
  /** `NAME` or `NAME=PATH`, repeatable. */
  credential?: string[];
  wait?: string;
}

/** Everything the crontab lines and the units are made from. */
export interface UnattendedSetup {
  /** The program: node and the CLI's bin script. */
  command: string[];
  configFile: string;
  user: string | undefined;
  envFile: string | undefined;
  /** `LoadCredential=` NAME → file. */
  credentials: Record<string, string>;
  waitMs: number;
  /** backupRoot, the local destinations' folders, `scheduling.readWritePaths`. */
  writable: string[];
  /** What runs must read besides (the rc file, the tool, what sources archive): for ProtectHome= and PrivateTmp=. */
  readable: string[];
  /** `${VAR}` names the rc file needs (no `:-default`). */
  variables: string[];
  jobs: UnattendedJob[];
}

const CREDENTIAL_FLAG = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.+))?$/;

export function unattendedSetup(config: ResolvedConfig, flags: SetupFlags, command: string[], cwd: string): UnattendedSetup {
  const rc = schedulingOptions(config);
  const configFile = config.file ?? path.resolve(cwd, '.sutazai-backuprc');
  const credentials = { ...rc.credentials };
  for (const flag of flags.credential ?? []) {
    const m = CREDENTIAL_FLAG.exec(flag);
    if (!m) throw new BackupError('E_USAGE', `--credential ${flag}: expected NAME or NAME=/path/to/file (NAME as in \${NAME} in the rc file)`);
    credentials[m[1]!] = m[2] ? path.resolve(cwd, m[2]) : path.join(CREDSTORE, m[1]!);
  }
  const envFile = flags.envFile ? path.resolve(cwd, flags.envFile) : rc.envFile;
  const waitMs = flags.wait !== undefined ? parseWait(flags.wait) : rc.waitMs;
  const variables = rcVariables(configFile);
  // Nothing says where secrets come from: each ${VAR} is a credential in systemd's store.
  if (!envFile && Object.keys(credentials).length === 0) for (const v of variables) credentials[v] = path.join(CREDSTORE, v);
  const localDestinations = config.destinations.filter((d) => d.use === 'local' && typeof d.options.path === 'string').map((d) => path.resolve(config.dir, d.options.path as string));
  return {
    command,
    configFile,
    user: flags.user ?? rc.user,
    envFile,
    credentials,
    waitMs,
    writable: unique([config.backupRoot, ...localDestinations, ...rc.readWritePaths]),
    readable: unique([configFile, config.dir, ...command, ...config.sources.flatMap((s) => s.reads?.flatMap((r) => r.paths) ?? [])]),
    variables,
    jobs: unattendedJobs(config, waitMs),
  };
}

/** The `${VAR}` names (without a default) the rc file reads: what an unattended run must be given. */
function rcVariables(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const names = [...text.matchAll(/(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].filter((m) => m[1] === '').map((m) => m[2]!);
  return unique(names);
}

function unique<T>(list: T[]): T[] {
  return [...new Set(list)];
}

#!/usr/bin/env node
// Makes sure the programs and system users the integration tests need are present.
// Run as `node scripts/ensure-test-deps.mjs`: quiet when everything is there; as root it installs
// what is missing with apt-get; otherwise it says what to install and exits 1.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

const PG = '/usr/lib/postgresql/15/bin';

/** [program (absolute path or a name looked up in PATH), Debian package that provides it] */
const REQUIRED = [
  ['/usr/sbin/sshd', 'openssh-server'],
  ['ssh', 'openssh-client'],
  ['ssh-keygen', 'openssh-client'],
  ['rsync', 'rsync'],
  ['zstd', 'zstd'],
  ['gpg', 'gnupg'],
  ['restic', 'restic'],
  ['rclone', 'rclone'],
  [`${PG}/initdb`, 'postgresql-15'],
  [`${PG}/postgres`, 'postgresql-15'],
  [`${PG}/pg_ctl`, 'postgresql-15'],
  [`${PG}/pgbench`, 'postgresql-15'],
  [`${PG}/pg_dump`, 'postgresql-client-15'],
  [`${PG}/pg_restore`, 'postgresql-client-15'],
  [`${PG}/pg_dumpall`, 'postgresql-client-15'],
  [`${PG}/pg_isready`, 'postgresql-client-15'],
  ['psql', 'postgresql-client-15'],
  ['ps', 'procps'],
  ['prometheus', 'prometheus'],
  ['promtool', 'prometheus'],
  ['curl', 'curl'],
  // Unattended runs: units checked by systemd-analyze, a journald in a private namespace, rsyslog.
  ['systemd-analyze', 'systemd'],
  ['journalctl', 'systemd'],
  ['systemd-cat', 'systemd'],
  ['/lib/systemd/systemd-journald', 'systemd'],
  ['rsyslogd', 'rsyslog'],
  ['unshare', 'util-linux'],
  ['setpriv', 'util-linux'],
  // A unix datagram socket server for the syslog notifier's test (Node cannot open one).
  ['python3', 'python3'],
];

/** Everything we install in one go when something is missing (the list in the CI contract). */
const PACKAGES = [
  'openssh-server',
  'openssh-client',
  'rsync',
  'zstd',
  'gnupg',
  'restic',
  'rclone',
  'postgresql-15',
  'postgresql-client-15',
  'procps',
  'prometheus',
  'curl',
  'systemd',
  'rsyslog',
  'util-linux',
  'python3',
];

const SEARCH_PATH = [
  ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean),
  '/usr/local/sbin',
  '/usr/local/bin',
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
];

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function found(program) {
  if (path.isAbsolute(program)) return isExecutable(program);
  return SEARCH_PATH.some((dir) => isExecutable(path.join(dir, program)));
}

const missingPrograms = () => REQUIRED.filter(([program]) => !found(program));

function run(cmd, args, extraEnv = {}) {
  console.error(`> ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...extraEnv } });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

function userExists(name) {
  return spawnSync('getent', ['passwd', name], { stdio: 'ignore' }).status === 0;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
let missing = missingPrograms();

if (missing.length > 0) {
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  if (!isRoot) {
    console.error('The integration tests need programs that are not installed:');
    for (const [program, pkg] of missing) console.error(`  ${program}  (Debian package ${pkg})`);
    console.error('Install them with:');
    console.error(
      `  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages.join(' ')}`,
    );
    console.error('or run this script as root to install them.');
    process.exit(1);
  }
  console.error(`Installing test dependencies (missing: ${missing.map(([p]) => path.basename(p)).join(', ')})`);
  try {
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update'], env);
    run('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES], env);
  } catch (err) {
    console.error(`Could not install the test dependencies: ${err.message}`);
    process.exit(1);
  }
  missing = missingPrograms();
  if (missing.length > 0) {
    console.error('Still missing after apt-get install:');
    for (const [program, pkg] of missing) console.error(`  ${program}  (Debian package ${pkg})`);
    process.exit(1);
  }
}

if (isRoot) {
  try {
    // initdb refuses to run as root: the Postgres test server runs as this user.
    if (!userExists('postgres')) {
      run('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/var/lib/postgresql', '--shell', '/bin/sh', 'postgres']);
    }
    // An unprivileged user for tests that need to run something without root's powers.
    // '*' (no password, not locked) so that key-based ssh logins work with `UsePAM no`.
    if (!userExists('sutazai-test')) {
      run('useradd', ['--system', '--user-group', '--create-home', '--home-dir', '/home/sutazai-test', '--shell', '/bin/sh', '--password', '*', 'sutazai-test']);
    }
  } catch (err) {
    console.error(`Could not create the test users: ${err.message}`);
    process.exit(1);
  }
}

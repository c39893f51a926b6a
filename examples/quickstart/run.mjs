// The quickstart: make sample data, back it up, list, verify and restore it, with no server at all.
import { spawnSync } from 'node:child_process';
import { rmSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.resolve(here, '../../node_modules/.bin/sutazai-backup');

function step(title, command, args) {
  console.log(`\n$ ${[path.basename(command), ...args].join(' ')}    # ${title}`);
  const r = spawnSync(command, args, { cwd: here, stdio: 'inherit', env: { ...process.env, SUTAZAI_BACKUP_LOG_LEVEL: process.env.SUTAZAI_BACKUP_LOG_LEVEL ?? 'warn' } });
  if (r.status !== 0) {
    console.error(`\nquickstart: "${title}" failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

step('make sample data', process.execPath, ['make-sample.mjs']);
step('back up', cli, ['run']);
step('list snapshots', cli, ['list']);
step('verify the latest snapshot', cli, ['verify', 'latest']);
rmSync(path.join(here, 'work/restored'), { recursive: true, force: true });
step('restore it', cli, ['restore', 'latest', '--to', 'work/restored']);
step('prove it restores', cli, ['restore-test', 'latest']);

const env = readFileSync(path.join(here, 'work/restored/configs', here.slice(1), 'work/sample/config/.env'), 'utf8');
console.log(`\nThe restored .env, with its secret value redacted and its keys kept:\n${env}`);
console.log(`Everything is under ${path.join(here, 'work')}: backups/ (the repository) and restored/.`);

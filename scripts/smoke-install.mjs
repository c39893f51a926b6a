#!/usr/bin/env node
// A new user's install, from the packed packages: `node scripts/smoke-install.mjs [--pm npm|pnpm]
// [--node PATH] [--tarballs DIR] [--keep]`. Packs every package (`pnpm -r pack`, unless --tarballs
// names a folder of them), installs the CLI with the files, sqlite, local and gpg plugins into an
// empty folder without any native build (npm --ignore-scripts; pnpm with its defaults, which block
// install scripts), then, with the Node given (default: this one), runs what a user runs: --help,
// init, run (zstd, encrypted, with a local destination; and gzip), list, verify and restore, and a
// sqlite source, which must fail with the rebuild hint. Prints one line per step; exits 1 on the
// first failure. Everything it starts is in one temporary folder, removed at the end unless --keep.
// `--pack-into DIR` only packs, into DIR.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The pinned pnpm, or through npx where it is not installed (as scripts/setup.mjs does).
const pinned = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).packageManager.split('@')[1];
const pnpm = spawnSync('pnpm', ['--version'], { encoding: 'utf8' }).stdout?.trim() === pinned ? ['pnpm'] : ['npx', '--yes', `pnpm@${pinned}`];
const option = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const pm = option('pm', 'npm');
const node = path.resolve(option('node', process.execPath));
const keep = process.argv.includes('--keep');
const work = mkdtempSync(path.join(os.tmpdir(), `sutazai-smoke-${pm}-`));
// The Node under test first on PATH: npm, pnpm's shims and the CLI's `#!/usr/bin/env node` use it.
const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH}`, SUTAZAI_BACKUP_LOG_LEVEL: 'debug' };
delete env.SUTAZAI_BACKUP_ZSTD;
delete env.npm_config_nodedir;
const started = Date.now();
const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();

function step(name, fn) {
  const t = Date.now();
  try {
    const note = fn();
    console.log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)${note ? `: ${note}` : ''}`);
  } catch (err) {
    console.log(`FAIL ${name}: ${err.message}`);
    finish(1);
  }
}

function finish(code) {
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
  const what = option('pack-into') ? 'pack' : `${pm} install on Node ${version}`;
  console.log(`${code === 0 ? 'passed' : 'failed'}: ${what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(code);
}

function run(cmd, args, cwd, expected = 0) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== expected) throw new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${r.status ?? r.signal}, not ${expected}:\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
  return r;
}

const app = path.join(work, 'app');
const cli = (args, cwd, expected) => run(path.join(app, 'node_modules', '.bin', 'sutazai-backup'), args, cwd, expected);
const logged = (stderr, pattern) => stderr.split('\n').find((line) => pattern.test(line))?.replace(/^.*"msg":"([^"]*)".*$/, '$1');

let tarballs = option('tarballs') ?? option('pack-into');
if (!option('tarballs')) {
  tarballs ??= path.join(work, 'tarballs');
  step('pnpm -r pack', () => {
    run(pnpm[0], [...pnpm.slice(1), '-r', 'pack', '--pack-destination', tarballs], root);
    return `${readdirSync(tarballs).length} tarballs`;
  });
  if (option('pack-into')) finish(0);
}
const tarball = (name) => {
  const file = readdirSync(tarballs).find((f) => f.startsWith(`sutazai-backup-${name}-`) && f.endsWith('.tgz'));
  if (!file) throw new Error(`no tarball for ${name} in ${tarballs}`);
  return path.join(tarballs, file);
};

step(`${pm} install (no install scripts)`, () => {
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), '{ "name": "backups", "private": true }\n');
  const packages = ['cli', 'core', 'plugin-files', 'plugin-sqlite', 'plugin-local', 'plugin-gpg'].map(tarball);
  if (pm === 'npm') run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', ...packages], app);
  else {
    // pnpm resolves the CLI's dependency on core from the registry unless told where it is (npm
    // takes the core it is installing).
    writeFileSync(path.join(app, 'pnpm-workspace.yaml'), `overrides:\n  '@sutazai/backup-core': 'file:${tarball('core')}'\n`);
    // pnpm's defaults skip every install script and then exit 1 naming them
    // (ERR_PNPM_IGNORED_BUILDS): the packages are installed; that is what a user gets.
    const r = spawnSync(pnpm[0], [...pnpm.slice(1), 'add', ...packages], { cwd: app, env, encoding: 'utf8' });
    if (r.status !== 0 && !/ERR_PNPM_IGNORED_BUILDS/.test(r.stdout + r.stderr)) throw new Error(`pnpm add exited ${r.status}:\n${r.stdout}${r.stderr}`);
  }
  // Ours come from the tarballs, never from a registry.
  const lock = pm === 'npm' ? readFileSync(path.join(app, 'package-lock.json'), 'utf8') : readFileSync(path.join(app, 'pnpm-lock.yaml'), 'utf8');
  const fromRegistry = pm === 'npm'
    ? Object.entries(JSON.parse(lock).packages).filter(([k, v]) => k.includes('@sutazai/') && !String(v.resolved ?? 'file:').startsWith('file:'))
    : lock.split('\n').filter((l) => /@sutazai\/[^:]*@\d/.test(l) && !l.includes('file:'));
  if (fromRegistry.length) throw new Error(`from a registry: ${JSON.stringify(fromRegistry)}`);
  const built = ['zstd-napi/build', 'better-sqlite3/build', '@sutazai/backup-plugin-gpg/build'].filter((p) => existsSync(path.join(app, 'node_modules', p)));
  if (built.length) throw new Error(`native builds where none may be: ${built.join(', ')}`);
});

step('--help and --version', () => {
  cli(['--help'], app);
  return cli(['--version'], app).stdout.trim();
});

const zstdProject = path.join(app, 'zstd');
step('init, then run (zstd, encrypted, with a local destination)', () => {
  mkdirSync(path.join(zstdProject, 'config'), { recursive: true });
  writeFileSync(path.join(zstdProject, 'config', 'app.yaml'), 'model: llama3\nreplicas: 2\n'.repeat(500));
  writeFileSync(path.join(zstdProject, 'config', 'weights.bin'), Buffer.alloc(3 << 20, 7));
  cli(['init'], zstdProject);
  const rc = path.join(zstdProject, '.sutazai-backuprc');
  const text = readFileSync(rc, 'utf8').replace('# destinations:\n#   drive: { use: local, path: /mnt/backup-drive/sutazai, requireMount: true }', 'destinations:\n  drive: { use: local, path: ./drive }');
  writeFileSync(rc, `${text}\nencryption: { use: gpg, passphrase: "smoke-test passphrase" }\n`);
  const r = cli(['run', '--json'], zstdProject);
  const report = JSON.parse(r.stdout);
  if (report.status !== 'success' || !report.artifacts[0].file.endsWith('.tar.zst.gpg')) throw new Error(r.stdout);
  return `${logged(r.stderr, /zstd through/)}; ${logged(r.stderr, /AES through/)}`;
});

step('list, and list --from the destination', () => {
  const here = JSON.parse(cli(['list', '--json'], zstdProject).stdout);
  const there = JSON.parse(cli(['list', '--from', 'drive', '--json'], zstdProject).stdout);
  if (here.length !== 1 || there.length !== 1 || here[0].id !== there[0].id) throw new Error(`${JSON.stringify(here)} / ${JSON.stringify(there)}`);
  return here[0].id;
});

step('verify, and restore', () => {
  cli(['verify', 'latest'], zstdProject);
  cli(['verify', 'latest', '--from', 'drive'], zstdProject);
  cli(['restore', 'latest', '--to', path.join(zstdProject, 'restored')], zstdProject);
  const restored = path.join(zstdProject, 'restored', 'configs', zstdProject, 'config');
  for (const f of ['app.yaml', 'weights.bin']) {
    if (!readFileSync(path.join(restored, f)).equals(readFileSync(path.join(zstdProject, 'config', f)))) throw new Error(`${f} differs`);
  }
});

const gzipProject = path.join(app, 'gzip');
step('run (gzip), list, verify, restore', () => {
  mkdirSync(path.join(gzipProject, 'config'), { recursive: true });
  writeFileSync(path.join(gzipProject, 'config', '.env'), 'API_TOKEN=abc123\nMODE=prod\n');
  writeFileSync(path.join(gzipProject, '.sutazai-backuprc'), 'backupRoot: ./backups\ncompression: gzip\nsources:\n  configs: { use: files, paths: [./config] }\n');
  const report = JSON.parse(cli(['run', '--json'], gzipProject).stdout);
  if (report.status !== 'success' || !report.artifacts[0].file.endsWith('.tar.gz')) throw new Error(JSON.stringify(report));
  if (JSON.parse(cli(['list', '--json'], gzipProject).stdout).length !== 1) throw new Error('list');
  cli(['verify', 'latest'], gzipProject);
  cli(['restore', 'latest', '--to', path.join(gzipProject, 'restored')], gzipProject);
  const restored = readFileSync(path.join(gzipProject, 'restored', 'configs', gzipProject, 'config', '.env'), 'utf8');
  if (restored !== 'API_TOKEN=abc123\nMODE=prod\n') throw new Error(`restored .env: ${restored}`);
});

step('a sqlite source without its native build: validated, then refused with the rebuild hint', () => {
  const project = path.join(app, 'sqlite');
  mkdirSync(project);
  writeFileSync(path.join(project, 'agents.db'), '');
  writeFileSync(path.join(project, '.sutazai-backuprc'), 'backupRoot: ./backups\nsources:\n  agents: { use: sqlite, path: ./agents.db }\n');
  cli(['config', 'validate'], project);
  const r = cli(['run', '--json'], project, 1);
  const error = JSON.parse(r.stdout).errors[0];
  if (error?.plugin !== 'sources.agents' || !error.message.includes('npm rebuild better-sqlite3')) throw new Error(r.stdout);
});

finish(0);

#!/usr/bin/env node
// Installs the workspace with the pinned pnpm and builds every package.
// Works on a machine that has only Node.js 20 and npm: pnpm comes through npx when it is missing,
// and native addons (better-sqlite3, zstd-napi) compile against the headers of the running Node.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { packageManager } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const pnpmVersion = packageManager.split('@')[1];

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 11)) {
  console.error(`sutazai-backup needs Node.js 20.11 or newer; this is ${process.version}.`);
  process.exit(1);
}

const env = { ...process.env };
// node-gyp would otherwise download headers from nodejs.org, which may be unreachable.
const nodeDir = path.resolve(path.dirname(process.execPath), '..');
if (!env.npm_config_nodedir && existsSync(path.join(nodeDir, 'include/node/node_api.h'))) {
  env.npm_config_nodedir = nodeDir;
}

function pnpmCommand() {
  const probe = spawnSync('pnpm', ['--version'], { encoding: 'utf8' });
  if (probe.status === 0 && probe.stdout.trim() === pnpmVersion) return ['pnpm', []];
  return ['npx', ['--yes', `pnpm@${pnpmVersion}`]];
}

function run(cmd, args) {
  console.error(`> ${[cmd, ...args].join(' ')}`);
  execFileSync(cmd, args, { cwd: root, env, stdio: 'inherit' });
}

const [pnpm, prefix] = pnpmCommand();
const frozen = existsSync(path.join(root, 'pnpm-lock.yaml')) && process.env.SUTAZAI_UNFROZEN !== '1';
run(pnpm, [...prefix, 'install', ...(frozen ? ['--frozen-lockfile'] : [])]);
run(path.join(root, 'node_modules/.bin/tsc'), ['-b', 'tsconfig.build.json']);
// zod as one file: the command line starts faster (scripts/bundle-core-vendor.mjs).
run(process.execPath, [path.join(root, 'scripts/bundle-core-vendor.mjs')]);
// The gpg plugin's optional addon (AES into reused memory); without a compiler the plugin still works.
run(process.execPath, [path.join(root, 'plugins/gpg/scripts/build-native.mjs')]);

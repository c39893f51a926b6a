#!/usr/bin/env node
// Compiles the plugin's addon (native/openpgp.c -> build/openpgp.node) against the headers of the Node
// running this script, with the C compiler in $CC or `cc`. The addon is optional: without it the
// plugin encrypts through node:crypto (slower, same bytes), so a machine without a compiler or
// headers gets a note, not a failed install. `--strict` makes any failure an error (CI).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const strict = process.argv.includes('--strict');
const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(here, 'native', 'openpgp.c');
const target = path.join(here, 'build', 'openpgp.node');
// What the addon was built against: the plugin loads it only under the same Node and OpenSSL.
const stamp = path.join(here, 'build', 'openpgp.json');
const runtime = { node: process.version, modules: process.versions.modules, openssl: process.versions.openssl };

let partial;

function skip(why) {
  if (partial) rmSync(partial, { force: true });
  const message = `@sutazai/backup-plugin-gpg: addon not built (${why}); encryption uses node:crypto instead (same output, slower)`;
  if (strict) {
    console.error(message);
    process.exit(1);
  }
  console.warn(message);
  process.exit(0);
}

const headerDirs = [
  process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
  path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
].filter(Boolean);
const include = headerDirs.find((dir) => existsSync(path.join(dir, 'node_api.h')) && existsSync(path.join(dir, 'openssl', 'evp.h')));
if (!include) skip(`no Node headers with OpenSSL in ${headerDirs.join(' or ')}`);
if (process.platform === 'win32') skip('Windows builds are not set up');

const built = existsSync(target) && statSync(target).mtimeMs;
const sameRuntime = existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === JSON.stringify(runtime);
if (built && sameRuntime && built >= statSync(source).mtimeMs && built >= statSync(fileURLToPath(import.meta.url)).mtimeMs && !process.argv.includes('--force')) process.exit(0);

mkdirSync(path.dirname(target), { recursive: true });
partial = `${target}.${process.pid}.tmp`;
// Node's own OpenSSL headers first: the addon calls the OpenSSL inside Node, whatever the system has.
const flags = ['-O3', '-fPIC', '-shared', '-Wall', '-Wextra', '-Werror', `-I${include}`];
if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');
// $CC, else the first C compiler found (a C++ driver compiles it as C with -x c).
const compilers = process.env.CC ? [[process.env.CC]] : [['cc'], ['gcc'], ['clang'], ['c++', '-x', 'c'], ['g++', '-x', 'c']];
let cc;
let r;
for ([cc, ...r] of compilers) {
  r = spawnSync(cc, [...flags, ...r, source, '-o', partial], { encoding: 'utf8' });
  if (r.error?.code !== 'ENOENT') break;
}
if (r.error) skip(`${cc}: ${r.error.message}`);
if (r.status !== 0) skip(`${cc} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(0, 5).join(' | ')}`);
renameSync(partial, target);
writeFileSync(stamp, `${JSON.stringify(runtime)}\n`);
console.error(`@sutazai/backup-plugin-gpg: built ${path.relative(process.cwd(), target)} (${cc}, headers ${include})`);

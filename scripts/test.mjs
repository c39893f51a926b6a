#!/usr/bin/env node
// Runs the test suite: makes sure the system programs the integration tests need are there, then
// `vitest run` with any extra arguments (`node scripts/test.mjs test/helpers`), exiting with its code.
import { spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) {
    console.error(`could not run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.signal) process.exit(128 + (constants.signals[r.signal] ?? 1));
  return r.status ?? 1;
}

const deps = run(process.execPath, [path.join(root, 'scripts/ensure-test-deps.mjs')]);
if (deps !== 0) process.exit(deps);
process.exit(run(path.join(root, 'node_modules/.bin/vitest'), ['run', ...process.argv.slice(2)]));

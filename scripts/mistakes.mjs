#!/usr/bin/env node
// The four mistakes of issue 18, each made on purpose in a copy of packages/core: the tests that
// guard the behaviour must fail against it. A mistake no test notices is a behaviour nothing holds.
//   node scripts/mistakes.mjs            every mistake
//   node scripts/mistakes.mjs 2 4a       the ones named
// A mistake is a few small edits, each a snippet of code replaced wherever in packages/core/src it
// is (so it survives code moving between modules); a snippet found nowhere, or in more than one
// place, stops the check with "mistake N no longer applies" and the mistake must be adapted. For
// each: the edits are made in the copy, the copy is rebuilt (tests that start processes run its
// dist/), and the guarding tests run against it; at least one must fail. First, as a control, the
// same tests must pass on the unchanged copy.
// Exits 1 when a mistake goes unnoticed, no longer applies, or the control fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const core = (...files) => files.map((f) => `packages/core/test/${f}.test.ts`);
/** Makes `await f(` call nothing (and still type-check). */
const NOTHING = 'await (async (..._args: unknown[]) => undefined)(';

const MISTAKES = [
  {
    id: '1',
    what: "every profile is pruned with the first profile's retention policy",
    edits: [{ find: 'const p = policy(profile);', replace: 'const p = policy([...byProfile.keys()][0]!);' }],
    tests: core('pruner', 'pruner-report'),
  },
  {
    id: '2',
    what: 'prune no longer removes incomplete snapshots (marked folders without a manifest past the grace period)',
    edits: [{ find: 'await repo.deleteIncomplete(', replace: NOTHING }],
    tests: core('pruner', 'pruner-report'),
  },
  {
    id: '3',
    what: "restore --force no longer replaces the entries of a non-empty DIR/<source> (its replace step is gone)",
    edits: [{ find: 'for (const root of roots ?? (await fsp.readdir(from))) {', replace: 'for (const root of [] as string[]) {' }],
    tests: core('restore'),
  },
  {
    id: '4a',
    what: "stale-lock detection, other host: another host's lock is taken for stale when its pid is dead here",
    edits: [{ find: 'if (owner.host !== os.hostname()) return false;', replace: '' }],
    tests: core('process-owner', 'lock', 'lock-lifecycle', 'staging', 'restore-work'),
  },
  {
    id: '4b',
    what: 'stale-lock detection, reused pid: a lock whose pid now belongs to another process is taken for live',
    edits: [{ find: 'owner.processStart !== start', replace: 'false' }],
    tests: core('process-owner', 'lock', 'lock-lifecycle', 'staging', 'restore-work'),
  },
];

function fail(message) {
  console.error(`mistakes: ${message}`);
  process.exit(2);
}

const names = process.argv.slice(2);
for (const n of names) if (!MISTAKES.some((m) => m.id === n)) fail(`unknown mistake "${n}" (known: ${MISTAKES.map((m) => m.id).join(', ')})`);
const chosen = names.length ? MISTAKES.filter((m) => names.includes(m.id)) : MISTAKES;

/** A copy of packages/core (sources, tests, built output) that resolves packages from this checkout. */
function makeCopy() {
  const copy = mkdtempSync(path.join(os.tmpdir(), 'sutazai-mistakes-'));
  const from = path.join(ROOT, 'packages/core');
  const to = path.join(copy, 'packages/core');
  mkdirSync(to, { recursive: true });
  for (const entry of ['src', 'test', 'dist', 'package.json', 'tsconfig.json']) cpSync(path.join(from, entry), path.join(to, entry), { recursive: true });
  cpSync(path.join(ROOT, 'tsconfig.base.json'), path.join(copy, 'tsconfig.base.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
  symlinkSync(path.join(from, 'node_modules'), path.join(to, 'node_modules'));
  writeFileSync(path.join(copy, 'vitest.config.mjs'), "export default { test: { pool: 'forks', testTimeout: 60_000, maxWorkers: 2 } };\n");
  return copy;
}

function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath ?? e.path, e.name));
}

/**
 * Makes the mistake's edits in the copy's sources; returns a function that undoes them, or throws
 * when a snippet is not exactly once in packages/core/src.
 */
function makeMistake(copy, mistake) {
  const src = path.join(copy, 'packages/core/src');
  const originals = new Map();
  for (const { find, replace } of mistake.edits) {
    const hits = sourceFiles(src).flatMap((file) => {
      const text = readFileSync(file, 'utf8');
      const count = text.split(find).length - 1;
      return count ? [{ file, text, count }] : [];
    });
    const total = hits.reduce((sum, h) => sum + h.count, 0);
    if (total === 0) throw new Error(`mistake ${mistake.id} no longer applies: snippet not found in packages/core/src: ${find}`);
    if (total > 1) throw new Error(`mistake ${mistake.id} no longer applies: snippet found ${total} times (${hits.map((h) => path.relative(copy, h.file)).join(', ')}): ${find}`);
    const [{ file, text }] = hits;
    if (!originals.has(file)) originals.set(file, readFileSync(file, 'utf8'));
    writeFileSync(file, text.replace(find, () => replace));
    mistake.where = [...new Set([...(mistake.where ?? []), path.relative(copy, file)])];
  }
  return () => {
    for (const [file, text] of originals) writeFileSync(file, text);
  };
}

function build(copy) {
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-b', path.join(copy, 'packages/core')], { stdio: 'inherit' });
}

/** Runs the tests in the copy: the names of the tests that failed, or why none could run. */
function runTests(copy, tests) {
  const report = path.join(copy, 'vitest-report.json');
  rmSync(report, { force: true });
  const run = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--reporter=json', `--outputFile.json=${report}`, ...tests], {
    cwd: copy,
    encoding: 'utf8',
    env: { ...process.env, FORCE_COLOR: '0' },
    maxBuffer: 64 * 1024 * 1024,
  });
  let result;
  try {
    result = JSON.parse(readFileSync(report, 'utf8'));
  } catch {
    return { ran: 0, failed: [], broken: `vitest wrote no report: ${run.stderr.trim().split('\n').slice(-5).join(' / ')}` };
  }
  const failed = result.testResults.flatMap((file) => file.assertionResults.filter((t) => t.status === 'failed').map((t) => `${path.basename(file.name)} > ${t.fullName}`));
  const broken = result.testResults.filter((file) => file.status === 'failed' && file.assertionResults.length === 0).map((file) => `${path.basename(file.name)}: ${file.message}`);
  return { ran: result.numTotalTests, failed, broken: broken.join('; ') || undefined };
}

const seconds = (t0) => Math.round((Date.now() - t0) / 1000);
const started = Date.now();
const copy = makeCopy();
const problems = [];
let caught = 0;
try {
  // Every snippet first, so a mistake that no longer applies is told before minutes of tests.
  for (const mistake of chosen) {
    try {
      makeMistake(copy, mistake)();
    } catch (err) {
      problems.push(err.message);
    }
  }
  if (problems.length) throw new Error('stop');
  const allTests = [...new Set(chosen.flatMap((m) => m.tests))];
  console.log(`control: ${allTests.length} test files on the unchanged copy`);
  build(copy);
  const control = runTests(copy, allTests);
  if (control.failed.length || control.broken || !control.ran) {
    problems.push(`control: the tests fail without any mistake (${[...control.failed, control.broken].filter(Boolean).join('; ') || 'no tests ran'})`);
  } else {
    for (const mistake of chosen) {
      let undo;
      try {
        undo = makeMistake(copy, mistake);
      } catch (err) {
        problems.push(err.message);
        continue;
      }
      try {
        const t0 = Date.now();
        try {
          build(copy);
        } catch {
          problems.push(`mistake ${mistake.id} no longer applies: core does not compile with it (see tsc's errors above)`);
          continue;
        }
        const t1 = Date.now();
        const { failed, broken } = runTests(copy, mistake.tests);
        const took = `build ${seconds(t0)} s, tests ${seconds(t1)} s`;
        if (broken) problems.push(`mistake ${mistake.id}: the tests could not run against it: ${broken}`);
        else if (!failed.length) problems.push(`mistake ${mistake.id} NOT NOTICED: ${mistake.tests.join(', ')} all pass with it (${mistake.what})`);
        else {
          caught += 1;
          console.log(`caught  mistake ${mistake.id} in ${mistake.where.join(', ')} (${took}): ${mistake.what}\n        ${failed.length} failed, e.g. ${failed.slice(0, 3).join('\n                 ')}`);
        }
      } finally {
        undo();
      }
    }
  }
} catch (err) {
  if (err.message !== 'stop') throw err;
} finally {
  rmSync(copy, { recursive: true, force: true });
}
console.log(`\n${caught} of ${chosen.length} mistakes caught in ${seconds(started)} s`);
for (const p of problems) console.log(`FAIL  ${p}`);
process.exitCode = problems.length ? 1 : 0;

#!/usr/bin/env node
// Mutation testing of the safety-critical modules listed in stryker.config.mjs, one Stryker run
// per module, and a table of their scores and timings at the end.
//   node scripts/mutation.mjs                     every module
//   node scripts/mutation.mjs lock retention      the modules named
//   node scripts/mutation.mjs --changed [REF]     the modules whose source or unit tests differ
//                                                 from REF (default origin/main; all of them when
//                                                 the test helpers or this setup changed)
//   --budget MINUTES                              (with any of the above) start no module once
//                                                 MINUTES have passed; the modules not reached are
//                                                 listed, and the list starts at a different module
//                                                 each day so that runs under a budget cover all
// Exits 1 when a module scores under 85% (Stryker's score: killed and timed-out mutants over all
// mutants that ran or had no test), or has no unit tests at all.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const THRESHOLD = 85;
process.chdir(ROOT);
const { MODULES } = await import(path.join(ROOT, 'stryker.config.mjs'));
const { Stryker } = await import('@stryker-mutator/core');

function changedModules(ref) {
  try {
    execFileSync('git', ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { stdio: 'ignore' });
  } catch {
    console.error(`--changed ${ref}: no such commit or branch (name the base, e.g. --changed main, or set MUTATION_BASE)`);
    process.exit(2);
  }
  const diff = (args) => execFileSync('git', args, { encoding: 'utf8' }).split('\n').filter(Boolean);
  const files = new Set([...diff(['diff', '--name-only', `${ref}...HEAD`]), ...diff(['diff', '--name-only', 'HEAD'])]);
  // The test helpers and the mutation setup itself bear on every module.
  const everything = [...files].some((f) => f.startsWith('packages/core/test/helpers/') || ['stryker.config.mjs', 'vitest.mutation.config.ts', 'scripts/mutation.mjs'].includes(f));
  if (everything) return Object.keys(MODULES);
  return Object.entries(MODULES)
    .filter(([, m]) => files.has(m.mutate) || m.tests.some((t) => files.has(t)))
    .map(([name]) => name);
}

const args = process.argv.slice(2);
let budgetMinutes = Infinity;
const budgetAt = args.indexOf('--budget');
if (budgetAt >= 0) {
  budgetMinutes = Number(args[budgetAt + 1]);
  if (!(budgetMinutes > 0)) {
    console.error(`--budget ${args[budgetAt + 1] ?? ''}: a number of minutes, e.g. --budget 30`);
    process.exit(2);
  }
  args.splice(budgetAt, 2);
}
let names;
if (args[0] === '--changed') {
  const ref = args[1] ?? process.env.MUTATION_BASE ?? 'origin/main';
  names = changedModules(ref);
  console.log(`modules changed since ${ref}: ${names.join(', ') || 'none'}`);
  if (!names.length) process.exit(0);
} else {
  names = args.length ? args : Object.keys(MODULES);
}
for (const n of names) {
  if (!MODULES[n]) {
    console.error(`unknown module "${n}" (modules: ${Object.keys(MODULES).join(', ')})`);
    process.exit(2);
  }
}

if (budgetMinutes !== Infinity) {
  // Rotate by the day, so that a budget too short for every module still reaches each in turn.
  const day = Math.floor(Date.now() / 86_400_000);
  const k = day % names.length;
  names = [...names.slice(k), ...names.slice(0, k)];
}
const started = Date.now();
const notReached = [];

const counted = (results, status) => results.filter((r) => r.status === status).length;
const rows = [];
for (const name of names) {
  const module = MODULES[name];
  if ((Date.now() - started) / 60_000 >= budgetMinutes) {
    notReached.push(name);
    continue;
  }
  if (!module.tests.length) {
    rows.push({ name, file: module.mutate, note: 'no unit tests import it yet', score: 0 });
    continue;
  }
  process.env.SUTAZAI_MUTATE = name;
  // The test runner's processes read SUTAZAI_MUTATE (vitest.mutation.config.ts); `mutate` here
  // wins over the config file's, which Node loads once.
  const t0 = Date.now();
  const results = await new Stryker({ configFile: 'stryker.config.mjs', mutate: [module.mutate] }).runMutationTest();
  const seconds = (Date.now() - t0) / 1000;
  const killed = counted(results, 'Killed');
  const timeout = counted(results, 'Timeout');
  const survived = counted(results, 'Survived');
  const noCoverage = counted(results, 'NoCoverage');
  const valid = killed + timeout + survived + noCoverage;
  rows.push({ name, file: module.mutate, mutants: results.length, killed, timeout, survived, noCoverage, seconds, score: valid ? (100 * (killed + timeout)) / valid : 100 });
  for (const r of results.filter((m) => m.status === 'Survived' || m.status === 'NoCoverage')) {
    console.log(`  ${r.status === 'Survived' ? 'survived' : 'no test '} ${module.mutate}:${r.location.start.line}:${r.location.start.column + 1} ${r.mutatorName}: ${JSON.stringify(r.replacement ?? '')}`);
  }
}

console.log('\nmutation scores (threshold ' + THRESHOLD + '% unless a module in stryker.config.mjs says otherwise)');
console.log('| module | mutants | killed | timeout | survived | no test | score | time |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  if (r.note) console.log(`| ${r.name} | | | | | | ${r.note} | |`);
  else console.log(`| ${r.name} | ${r.mutants} | ${r.killed} | ${r.timeout} | ${r.survived} | ${r.noCoverage} | ${r.score.toFixed(1)}% | ${r.seconds.toFixed(0)} s |`);
}
const total = rows.reduce((sum, r) => sum + (r.seconds ?? 0), 0);
console.log(`\n${rows.length} module(s) in ${Math.floor(total / 60)} min ${Math.round(total % 60)} s`);
if (notReached.length) console.log(`not reached within the ${budgetMinutes}-minute budget (run them with node scripts/mutation.mjs ${notReached.join(' ')}): ${notReached.join(', ')}`);
const thresholdOf = (name) => MODULES[name].threshold ?? THRESHOLD;
const below = rows.filter((r) => r.score < thresholdOf(r.name));
if (below.length) console.log(`\nFAIL  under their threshold: ${below.map((r) => `${r.name} (${r.score.toFixed(1)}% < ${thresholdOf(r.name)}%)`).join(', ')}`);
process.exitCode = below.length ? 1 : 0;

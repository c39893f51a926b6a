// Mutation testing of the safety-critical core (issue 18): Stryker changes one thing at a time in
// these modules (a condition, a boundary, a string) and runs the fast unit tests that guard them;
// a mutant no test notices is a behaviour nothing holds. `pnpm test:mutation` runs every module,
// `pnpm test:mutation snapshot-id manifest` the modules named, `pnpm test:mutation:changed BASE`
// those whose source or tests differ from BASE (for CI); scripts/mutation.mjs prints a score per
// module. The engine-level integration tests are not used: they run the built CLI, which never
// sees Stryker's mutants, and take minutes.
//
// Surviving mutants, and why they are left. Each is equivalent: no input can tell it from the
// code as written, so no honest test can kill it.
//   snapshot-id.ts (96.4%, 53 of 55 killed)
//     - ID without its leading `^`: parseSnapshotId also requires the id to start with the stamp
//       its time writes back as, so a prefix before the stamp is refused either way.
//     - stampOf's /\.\d{3}Z$/ without `$`: toISOString() ends with the only ".dddZ" it contains.
//   manifest.ts (93.2%, 96 of 103 killed)
//     - canonicalJson, arrays: `v === undefined ? null : v` -> `v`: canonicalJson(undefined) is
//       "null" anyway (JSON.stringify(undefined) ?? 'null').
//     - canonicalJson's key comparator (5 mutants: `<` -> `<=`, `>` -> `>=`/`<=`, `a > b` ->
//       true/false): object keys are never equal, and V8's sort only asks whether the result is
//       below zero, so -1 versus 0/1 is all that matters.
//     - manifestAuthenticatedBytes: Buffer.from(text, 'utf8') -> Buffer.from(text, ''): Node reads
//       an empty encoding as UTF-8.
// retention.ts (87.2%, 23 survived, 6 without a test), lock.ts, restore.ts, repository.ts,
// secrets.ts: not raised yet, because other work is rewriting them (retention and prune, the lock
// and restore, secrets); their survivors are explained here once that work has merged. lock,
// restore and repository have no unit tests that import their source yet (the integration tests
// run the built CLI), so they score 0 until they do.

/**
 * One line per module: the source Stryker mutates, and the unit tests (importing the source, not
 * the built package) that guard it. Adding a module is adding a line.
 */
export const MODULES = {
  'snapshot-id': { mutate: 'packages/core/src/snapshot-id.ts', tests: ['packages/core/test/snapshot-id.test.ts'] },
  manifest: { mutate: 'packages/core/src/manifest.ts', tests: ['packages/core/test/manifest.test.ts', 'packages/core/test/manifest-names.test.ts', 'packages/core/test/manifest-and-config.test.ts'] },
  retention: { mutate: 'packages/core/src/retention.ts', tests: ['packages/core/test/retention.test.ts', 'packages/core/test/retention-edges.test.ts'] },
  pruner: { mutate: 'packages/core/src/pruner.ts', tests: ['packages/core/test/pruner.test.ts', 'packages/core/test/pruner-report.test.ts'] },
  suspects: { mutate: 'packages/core/src/suspects.ts', tests: ['packages/core/test/suspects.test.ts'] },
  secrets: { mutate: 'packages/core/src/secrets.ts', tests: ['packages/core/test/secrets.test.ts', 'packages/core/test/secrets-masking.test.ts', 'packages/core/test/config.test.ts', 'packages/core/test/manifest-and-config.test.ts'] },
  lock: { mutate: 'packages/core/src/lock.ts', tests: ['packages/core/test/lock.test.ts', 'packages/core/test/lock-lifecycle.test.ts'] },
  'process-owner': { mutate: 'packages/core/src/process-owner.ts', tests: ['packages/core/test/process-owner.test.ts'] },
  staging: { mutate: 'packages/core/src/staging.ts', tests: ['packages/core/test/staging.test.ts', 'packages/core/test/staging-entries.test.ts'] },
  'backup-root': { mutate: 'packages/core/src/backup-root.ts', tests: ['packages/core/test/backup-root.test.ts'] },
  restore: { mutate: 'packages/core/src/restore.ts', tests: ['packages/core/test/restore.test.ts'] },
  'restore-work': { mutate: 'packages/core/src/restore-work.ts', tests: ['packages/core/test/restore-work.test.ts'] },
  repository: { mutate: 'packages/core/src/repository.ts', tests: ['packages/core/test/repository.test.ts', 'packages/core/test/pruner.test.ts', 'packages/core/test/pruner-report.test.ts'] },
};

/** The modules named in SUTAZAI_MUTATE (comma-separated), or all of them. */
export function selectedModules(env = process.env) {
  const names = env.SUTAZAI_MUTATE ? env.SUTAZAI_MUTATE.split(',').filter(Boolean) : Object.keys(MODULES);
  for (const n of names) if (!MODULES[n]) throw new Error(`unknown module "${n}" (modules: ${Object.keys(MODULES).join(', ')})`);
  return names;
}

/** The test files of the selected modules, for vitest.mutation.config.ts. */
export function selectedTests(env = process.env) {
  return [...new Set(selectedModules(env).flatMap((n) => MODULES[n].tests))];
}

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: true },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: selectedModules().map((n) => MODULES[n].mutate),
  coverageAnalysis: 'perTest',
  checkers: [],
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 2),
  timeoutMS: 10_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: process.env.STRYKER_TMP ?? '.stryker-tmp',
  cleanTempDir: 'always',
};

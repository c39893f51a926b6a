/**
 * The README's "Writing a plugin" example, taken verbatim from README.md (so the two cannot drift),
 * type-checked and built, then run against programs that print 1 B, 70,000 B or 1 MiB and exit at
 * once, beside a busy CPU: every backup succeeds and restores byte for byte. 50 runs per size: 47
 * drive the engine in-process (the testkit's check), 3 per size go through the real command line.
 * (The example as it was, a child's stdout handed over, failed most 1 B runs and some 70,000 B
 * ones on the engine as it was.)
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { programPrinting, sourceStreamChecks, startCpuLoad } from '@sutazai/backup-testkit';
import { REPO_ROOT, runCli, sourceProject, tempDir } from '../helpers/cli.js';

const SIZES = [1, 70_000, 1024 * 1024];
const IN_PROCESS_RUNS = 47;
const CLI_RUNS = 3;

/** The first ```ts block of the README's "Writing a plugin" section. */
async function readmeExample(): Promise<string> {
  const readme = await fsp.readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Writing a plugin'));
  const block = /```ts\n([\s\S]*?)```/.exec(section.slice(0, section.indexOf('\n### ', 1)));
  if (!block) throw new Error('README.md: no ```ts block under "### Writing a plugin"');
  return block[1]!;
}

/** Type-checks the example against core's published types and writes it as JavaScript; returns the .js path. */
async function buildExample(dir: string): Promise<string> {
  await fsp.mkdir(path.join(dir, 'plugins'), { recursive: true });
  // The plugin imports @sutazai/backup-core as a user's project would: from its node_modules.
  await fsp.symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  // As in a user's ESM project: the emitted .js loads as the module it is.
  await fsp.writeFile(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  const source = path.join(dir, 'plugins', 'redis.ts');
  await fsp.writeFile(source, await readmeExample());
  const program = ts.createProgram([source], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [path.join(REPO_ROOT, 'node_modules', '@types')],
  });
  const emitted = program.emit();
  const problems = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  expect(problems, 'the README example type-checks').toEqual([]);
  return path.join(dir, 'plugins', 'redis.js');
}

let work: string;
let plugin: string;
beforeAll(async () => {
  work = await tempDir('sutazai-readme-plugin-');
  plugin = await buildExample(work);
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** The testkit's check of the built example, in-process. */
const checks = (use: string) =>
  sourceStreamChecks({
    use,
    sizes: SIZES,
    runs: IN_PROCESS_RUNS,
    fixture: async ({ data, dir }) => ({ options: { dumpCommand: await programPrinting(data, dir) }, expected: { 'dump.rdb': data } }),
  });

describe("the README's plugin example", () => {
  SIZES.forEach((size, i) => {
    it(`${IN_PROCESS_RUNS} backups of programs printing ${size} bytes and exiting at once, beside a busy CPU: all succeed and restore byte for byte`, async () => {
      await checks(plugin)[i]!.run();
    }, 600_000);
  });

  it('through the command line: every run exits 0 and restores byte for byte', async () => {
    const load = startCpuLoad();
    try {
      for (const size of SIZES) {
        for (let i = 0; i < CLI_RUNS; i++) {
          const dir = path.join(work, `cli-${size}-${i}`);
          await fsp.mkdir(dir);
          const data = randomBytes(size);
          await sourceProject(dir, 'cache', plugin, `dumpCommand: ${JSON.stringify(await programPrinting(data, dir))}`);
          const run = await runCli(['run', '--json'], { cwd: dir });
          expect(run.code, run.stderr).toBe(0);
          expect(run.json().artifacts[0].rawBytes).toBe(size);
          const restore = await runCli(['restore', 'latest', '--to', path.join(dir, 'out')], { cwd: dir });
          expect(restore.code, restore.stderr).toBe(0);
          expect((await fsp.readFile(path.join(dir, 'out', 'cache', 'dump.rdb'))).equals(data)).toBe(true);
        }
      }
    } finally {
      await load.stop();
    }
  }, 600_000);
});

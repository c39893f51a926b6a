/**
 * A source whose output the engine cannot read whole fails the run, naming the source, and
 * nothing is committed: a plugin that hands over a child's stdout after the child exited (Node
 * dropped what nobody read), or after reading some of it itself. And one failing source is one
 * error in `run --json`, however many other artifacts its failure stopped.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { committedSnapshots, REPO_ROOT, runCli, sourceProject, tempDir, writeRc } from '../helpers/cli.js';

/** A source in the stream form that waits for something before handing its program's stdout over. */
const LATE_PLUGIN = `
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { defineSource, z } from '@sutazai/backup-core';

export default defineSource({
  name: 'late-dump',
  options: z.object({ command: z.array(z.string()).min(1), mode: z.enum(['after-exit', 'peek']) }).strict(),
  collect(ctx, options) {
    return [{
      type: 'file', name: ctx.instance, ext: 'bin', filename: 'dump.bin',
      async open() {
        const child = spawn(options.command[0], options.command.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
        const done = once(child, 'close').then(([code]) => { if (code !== 0) throw new Error('exit ' + code); });
        if (options.mode === 'after-exit') {
          // Another thing to wait for (a lock, a connection) while the program already finished.
          await done;
          await new Promise((resolve) => setImmediate(resolve));
        } else {
          // Sniffing the format from the first bytes, then handing the rest over.
          await once(child.stdout, 'data');
        }
        return { stream: child.stdout, done };
      },
    }];
  },
});
`;

let work: string;
let plugin: string;
beforeAll(async () => {
  work = await tempDir('sutazai-source-output-');
  // The plugin imports @sutazai/backup-core from its project's node_modules, as a user's would.
  await fsp.symlink(path.join(REPO_ROOT, 'node_modules'), path.join(work, 'node_modules'));
  plugin = path.join(work, 'late-dump.mjs');
  await fsp.writeFile(plugin, LATE_PLUGIN);
  await fsp.writeFile(path.join(work, 'dump.bin'), Buffer.alloc(200_000, 7));
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('a source whose output was cut short before the engine got it', () => {
  it.each([
    ['its program exited before open() returned the stream', 'after-exit', 4_000, /had already ended|had already been read from|was flowing with nobody reading it/],
    ['open() read the first bytes itself', 'peek', 200_000, /had already been read from/],
  ])('fails the run (exit 1) naming the source when %s; nothing is committed', async (_what, mode, bytes, reason) => {
    const dir = await sourceProject(path.join(work, mode), 'cache', plugin, `command: [head, -c, "${bytes}", ${JSON.stringify(path.join(work, 'dump.bin'))}]\nmode: ${mode}`);
    const run = await runCli(['run', '--json'], { cwd: dir });
    expect(run.code, run.stderr).toBe(1);
    const { errors, status } = run.json();
    expect(status).toBe('failed');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ stage: 'archive', plugin: 'sources.cache', code: 'E_SOURCE' });
    expect(errors[0].message).toMatch(/^sources\.cache: the stream open\(\) returned for cache /);
    expect(errors[0].message).toMatch(reason);
    expect(errors[0].message).toContain('Return { command, args } and let the engine run the program');
    expect(await committedSnapshots(dir)).toEqual([]);
  });
});

describe('run --json lists a failing source once', () => {
  it('even when its failure stopped other artifacts that were being written (failFast)', async () => {
    const dir = path.join(work, 'one-failure');
    await fsp.mkdir(dir);
    const streaming = `{ use: command, command: [head, -c, "4000000000", /dev/zero] }`;
    await writeRc(
      dir,
      `backupRoot: ./backups\nconcurrency: 3\nsources:\n  failing: { use: command, command: 'sleep 0.5; echo partial; echo "dump: permission denied" >&2; exit 3' }\n  big-a: ${streaming}\n  big-b: ${streaming}\nprofiles:\n  default: { sources: "*", failFast: true }\n`,
    );
    const run = await runCli(['run', '--json'], { cwd: dir });
    expect(run.code, run.stderr).toBe(1);
    expect(run.json().errors).toEqual([
      { stage: 'archive', plugin: 'sources.failing', code: 'E_SOURCE', message: expect.stringMatching(/^sources\.failing: command .* failed: sh -c exited with code 3: dump: permission denied$/) },
    ]);
    expect(await committedSnapshots(dir)).toEqual([]);
  });
});

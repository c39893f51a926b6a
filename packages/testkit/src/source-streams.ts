import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Engine, silentLogger } from '@sutazai/backup-core';
import type { ConformanceCheck } from './conformance.js';

const KiB = 1024;

/** The sizes a source stream check tries by default: nothing, one byte, one pipe buffer, one MiB. */
export const STREAM_CHECK_SIZES: readonly number[] = [0, 1, 64 * KiB, 1024 * KiB];

/** The instance name the checks give the source in their rc file. */
export const STREAM_CHECK_SOURCE = 'streamed';

export interface SourceStreamCheckOptions {
  /** The source plugin as an rc file's `use:` names it: a short name, a package, or a path. */
  use: string;
  /** Output sizes in bytes, one check each; default STREAM_CHECK_SIZES. */
  sizes?: readonly number[];
  /** Backups per size; default 20. */
  runs?: number;
  /** Makes what one backup reads (called once per run): the source's options, and what restore must give back. */
  fixture(ctx: StreamFixtureContext): Promise<StreamFixture> | StreamFixture;
  /** Keep one CPU busy beside the backups, as on a loaded host; default true. */
  cpuLoad?: boolean;
  /** More top-level rc settings (`compression: gzip`, `encryption: {...}`). */
  rc?: Record<string, unknown>;
  /** Where `use:` resolves from; default the working directory. */
  resolveFrom?: string;
}

export interface StreamFixtureContext {
  /** The output size this check is about. */
  size: number;
  /** `size` random bytes, new for each run. */
  data: Buffer;
  /** A fresh folder for this run's files (made; removed after the run). */
  dir: string;
  /** The run's number within its size, from 0. */
  run: number;
}

export interface StreamFixture {
  /** The source's options: what goes under `sources.<name>:` besides `use`. */
  options: Record<string, unknown>;
  /** Files `restore --to DIR` must write under `DIR/<source>/`, by relative path, with their exact bytes. */
  expected?: Record<string, Buffer>;
  /** A check of the restored `DIR/<source>/` folder (for what is not a copy of `data`): throw when it is wrong. */
  check?(restored: string): Promise<void> | void;
}

/**
 * Backs a source up many times and restores each backup, comparing the restored bytes: one check
 * per output size, for a test runner to register (`for (const c of sourceStreamChecks(o)) it(c.name, c.run)`).
 * Made for the race that loses output: a program that exits before anyone reads its stdout.
 * Every backup must succeed and restore exactly; a check fails listing every run that did not.
 */
export function sourceStreamChecks(options: SourceStreamCheckOptions): ConformanceCheck[] {
  const runs = options.runs ?? 20;
  return (options.sizes ?? STREAM_CHECK_SIZES).map((size) => ({
    name: `${options.use}: ${runs} backups of ${size} bytes restore byte for byte`,
    run: async () => {
      const load = options.cpuLoad === false ? undefined : startCpuLoad();
      const failures: string[] = [];
      try {
        for (let run = 0; run < runs; run++) {
          const failure = await backUpAndRestore(options, size, run);
          if (failure) failures.push(`run ${run + 1}: ${failure}`);
        }
      } finally {
        await load?.stop();
      }
      assert.ok(failures.length === 0, `${options.use}, ${size} bytes: ${failures.length} of ${runs} backups failed:\n${failures.join('\n')}`);
    },
  }));
}

/** One backup and restore in a fresh folder; returns what went wrong, or undefined. */
async function backUpAndRestore(options: SourceStreamCheckOptions, size: number, run: number): Promise<string | undefined> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-stream-check-'));
  try {
    const fixtureDir = path.join(dir, 'fixture');
    await fsp.mkdir(fixtureDir);
    const fixture = await options.fixture({ size, data: randomBytes(size), dir: fixtureDir, run });
    const engine = await Engine.load({
      config: { backupRoot: path.join(dir, 'backups'), ...options.rc, sources: { [STREAM_CHECK_SOURCE]: { use: options.use, ...fixture.options } } },
      configDir: dir,
      ...(options.resolveFrom ? { cwd: options.resolveFrom } : {}),
      logger: silentLogger(),
    });
    try {
      const report = await engine.run();
      if (report.status !== 'success' || !report.snapshot) {
        return `the backup failed: ${report.errors.map((e) => `${e.plugin ?? e.stage}: ${e.message}`).join('; ') || 'no snapshot'}`;
      }
      const to = path.join(dir, 'restored');
      await engine.restore({ snapshot: report.snapshot, to });
      return await compareRestored(path.join(to, STREAM_CHECK_SOURCE), fixture);
    } finally {
      await engine.close();
    }
  } catch (err) {
    return (err as Error).message;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function compareRestored(restored: string, fixture: StreamFixture): Promise<string | undefined> {
  for (const [rel, bytes] of Object.entries(fixture.expected ?? {})) {
    const got = await fsp.readFile(path.join(restored, rel)).catch(() => undefined);
    if (!got) return `${rel} was not restored`;
    if (!got.equals(bytes)) return `${rel} restored ${got.length} bytes that differ from the ${bytes.length} backed up${firstDifference(got, bytes)}`;
  }
  await fixture.check?.(restored);
  return undefined;
}

function firstDifference(a: Buffer, b: Buffer): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return ` (first at byte ${i})`;
  return a.length === b.length ? '' : ` (one is a prefix of the other)`;
}

/**
 * A program that prints `data` and exits at once, for a source that runs programs: `cat` of a
 * file written into `dir`. Its argv.
 */
export async function programPrinting(data: Buffer, dir: string): Promise<string[]> {
  const file = path.join(dir, `output-${data.length}.bin`);
  await fsp.writeFile(file, data, { mode: 0o600 });
  return ['cat', file];
}

/** One CPU kept busy by a thread, until `stop`: a loaded host, where a quick program's exit races its reader. */
export function startCpuLoad(): { stop(): Promise<void> } {
  const worker = new Worker(new URL('./busy-loop.js', import.meta.url));
  worker.unref();
  return {
    async stop() {
      await worker.terminate();
    },
  };
}

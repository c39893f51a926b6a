/**
 * The testkit's stream check on the prometheus source against a real Prometheus: TSDB blocks of
 * about 0 B, 1 B, 64 KiB and 1 MiB of samples (written by promtool), snapshotted and streamed many
 * times beside a busy CPU; every block file restores byte for byte.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTree, sourceStreamChecks, type TreeItem } from '@sutazai/backup-testkit';
import { tempDir } from '../../../test/helpers/cli.js';
import { startPrometheus, type PrometheusServer } from '../../../test/helpers/prometheus.js';

let work: string;
const servers = new Map<number, Promise<{ prometheus: PrometheusServer; storage: string }>>();
beforeAll(async () => {
  work = await tempDir('sutazai-prometheus-streams-');
});
afterAll(async () => {
  for (const s of servers.values()) await (await s.catch(() => undefined))?.prometheus.stop();
  await fsp.rm(work, { recursive: true, force: true });
});

/**
 * Samples of random values whose compressed chunks come to about `size` bytes, all inside one
 * two-hour block (so Prometheus has nothing to compact while the test reads its blocks).
 */
function openMetrics(size: number): string {
  const series = size < 64 * 1024 ? 1 : Math.ceil(size / 1024);
  const perSeries = size <= 1 ? size : Math.min(120, Math.ceil(size / 9 / series));
  const twoHours = 2 * 3600;
  const start = Math.floor((Date.now() / 1000 - 3 * twoHours) / twoHours) * twoHours + 60;
  const lines = ['# TYPE payload gauge'];
  for (let s = 0; s < series; s++) for (let i = 0; i < perSeries; i++) lines.push(`payload{series="${s}"} ${Math.random()} ${start + i * 15}`);
  return `${lines.join('\n')}\n# EOF\n`;
}

/** A Prometheus (admin API on) serving blocks of about `size` bytes; one per size, started on first use. */
function prometheusFor(size: number): Promise<{ prometheus: PrometheusServer; storage: string }> {
  let started = servers.get(size);
  if (!started) {
    started = (async () => {
      const storage = path.join(work, `tsdb-${size}`);
      await fsp.mkdir(storage);
      if (size > 0) {
        const input = path.join(work, `samples-${size}.om`);
        await fsp.writeFile(input, openMetrics(size));
        execFileSync('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', input, storage], { stdio: 'ignore' });
      }
      return { prometheus: await startPrometheus([], { storage, args: ['--web.enable-admin-api'] }), storage };
    })();
    servers.set(size, started);
  }
  return started;
}

/** Every file of the TSDB blocks (folders with a meta.json) under `dir`, by relative path. */
async function blocks(dir: string): Promise<Record<string, TreeItem>> {
  const tree = await describeTree(dir);
  const ulids = Object.keys(tree).filter((p) => p.endsWith('/meta.json')).map((p) => p.split('/')[0]!);
  return Object.fromEntries(Object.entries(tree).filter(([p]) => ulids.includes(p.split('/')[0]!)));
}

describe('prometheus source, blocks of 0 B to 1 MiB of samples (testkit)', () => {
  const checks = sourceStreamChecks({
    use: 'prometheus',
    runs: 13,
    fixture: async ({ size, dir }) => {
      const { prometheus, storage } = await prometheusFor(size);
      return {
        options: { url: prometheus.url, dataDir: storage, skipHead: true },
        async check(restored) {
          const blocksDir = path.join(dir, 'restored-blocks');
          await fsp.mkdir(blocksDir);
          execFileSync('tar', ['-xf', path.join(restored, 'prometheus-snapshot.tar'), '-C', blocksDir]);
          const expected = await blocks(storage);
          expect(Object.keys(expected).length > 0).toBe(size > 0);
          expect(await blocks(blocksDir)).toEqual(expected);
        },
      };
    },
  });
  // Many backups beside a busy CPU: more than the default time on a loaded machine.
  for (const check of checks) it(check.name, check.run, 600_000);
});

/**
 * The Prometheus recipe of docs/recipes.md, end to end, against a real Prometheus (Debian's):
 * the command source takes a TSDB snapshot through the admin API and streams it as a tar, the
 * snapshot folder is removed afterwards, the check opens the blocks with promtool, and a second
 * Prometheus started on the restored blocks answers queries over the backed-up samples.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, tempDir, writeRc } from '../../../test/helpers/cli.js';
import { selfSamples, startPrometheus, startScrapingPrometheus, type PrometheusServer } from '../../../test/helpers/prometheus.js';

/** The rc file of docs/recipes.md's Prometheus recipe, pointed at `url` and `dataDir`. */
async function recipe(url: string, dataDir: string): Promise<string> {
  const doc = await fsp.readFile(path.join(REPO_ROOT, 'docs', 'recipes.md'), 'utf8');
  const block = doc.split('## Prometheus')[1]!.split('```yaml\n')[1]!.split('```')[0]!;
  const defaults = ['"http://127.0.0.1:9090"', '/var/lib/prometheus/metrics2'];
  for (const d of defaults) expect(block, 'the recipe changed: update this test').toContain(d);
  return `backupRoot: ./backups\n${block.replace(defaults[0]!, JSON.stringify(url)).replace(defaults[1]!, JSON.stringify(dataDir))}`;
}

describe('Prometheus through the command source (docs/recipes.md)', () => {
  let work: string;
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    work = await tempDir('sutazai-prom-recipe-');
    prometheus = await startScrapingPrometheus();
  });
  afterAll(async () => {
    await prometheus?.stop();
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('backs up a snapshot, removes it, checks the blocks, and the restored blocks answer queries', async () => {
    await writeRc(work, await recipe(prometheus.url, prometheus.dataDir));

    const run = await runCli(['run', '--json'], { cwd: work });
    expect(run.code, run.stderr).toBe(0);
    expect(run.json()).toMatchObject({ status: 'success', artifacts: [expect.objectContaining({ file: 'prometheus.tar.zst' })] });
    // The snapshot folder is gone: a backup does not fill Prometheus's disk.
    expect(await fsp.readdir(path.join(prometheus.dataDir, 'snapshots'))).toEqual([]);

    const test = await runCli(['restore-test', '--json'], { cwd: work });
    expect(test.code, test.stdout + test.stderr).toBe(0);
    expect(test.json().artifacts[0].checks).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'check', ok: true })]));

    const out = path.join(work, 'out');
    const restore = await runCli(['restore', 'latest', '--to', out], { cwd: work });
    expect(restore.code, restore.stderr).toBe(0);
    const blocks = path.join(work, 'blocks');
    await fsp.mkdir(blocks);
    execFileSync('tar', ['-xf', path.join(out, 'prometheus', 'prometheus-snapshot.tar'), '-C', blocks]);

    // A Prometheus that scrapes nothing, on the restored blocks: what it knows came from the backup.
    const restored = await startPrometheus([], { storage: blocks });
    try {
      expect(await selfSamples(restored)).toBeGreaterThan(2);
    } finally {
      await restored.stop();
    }
  });
});

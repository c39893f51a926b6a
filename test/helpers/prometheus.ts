/** A real Prometheus server (Debian's `prometheus`) on loopback that scrapes the given targets every second. */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, LOOPBACK } from './servers.js';

export interface PrometheusServer {
  url: string;
  /** Its TSDB folder (`--storage.tsdb.path`). */
  dataDir: string;
  /** Runs an instant query; resolves with the result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** Also scrape itself, as job "prometheus". */
  self?: boolean;
  /** Its TSDB folder (e.g. restored blocks); by default a new one, removed by stop(). */
  storage?: string;
  /** More command-line flags (`--web.enable-admin-api`). */
  args?: string[];
}

export async function startPrometheus(targets: string[], options: PrometheusOptions = {}): Promise<PrometheusServer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-prometheus-'));
  const port = await freePort();
  const dataDir = options.storage ?? path.join(dir, 'data');
  const jobs = [
    ...(targets.length ? [`  - job_name: sutazai-backup\n    static_configs:\n      - targets: [${targets.map((t) => `"${t}"`).join(', ')}]\n`] : []),
    ...(options.self ? [`  - job_name: prometheus\n    static_configs:\n      - targets: ["${LOOPBACK}:${port}"]\n`] : []),
  ];
  await fsp.writeFile(
    path.join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }\n${jobs.length ? `scrape_configs:\n${jobs.join('')}` : ''}`,
  );
  let log = '';
  const child = spawn(
    'prometheus',
    [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${dataDir}`, `--web.listen-address=${LOOPBACK}:${port}`, ...(options.args ?? [])],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const url = `http://${LOOPBACK}:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await fsp.rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}):\n${log}`);
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    dataDir,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      if (body.status !== 'success') throw new Error(`query ${expr} failed: ${JSON.stringify(body)}`);
      return body.data.result;
    },
    stop,
  };
}

/**
 * A Prometheus with its admin API on that scrapes itself (job "prometheus"), started and given
 * a few seconds of samples: something to snapshot.
 */
export async function startScrapingPrometheus(): Promise<PrometheusServer> {
  const prometheus = await startPrometheus([], { self: true, args: ['--web.enable-admin-api'] });
  const deadline = Date.now() + 30_000;
  while ((await prometheus.query('up{job="prometheus"}')).length === 0) {
    if (Date.now() > deadline) {
      await prometheus.stop();
      throw new Error('prometheus scraped nothing in 30 s');
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  await new Promise((r) => setTimeout(r, 3000));
  return prometheus;
}

/** How many samples of its own `up` a Prometheus holds for the last hour (on restored blocks: what came back). */
export async function selfSamples(prometheus: PrometheusServer): Promise<number> {
  const result = await prometheus.query('count_over_time(up{job="prometheus"}[1h])');
  return Number(result[0]?.value[1] ?? 0);
}

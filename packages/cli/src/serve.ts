import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BackupError, type Engine, type Logger } from '@sutazai/backup-core';
import { prometheusMetrics } from './metrics.js';

/** `--listen host:port`. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new BackupError('E_USAGE', `--listen ${listen}: expected host:port, like 127.0.0.1:9469`);
  return { host: m[1]!, port: Number(m[2]) };
}

export interface MetricsServer {
  /** `host:port` it listens on. */
  address: string;
  close(): Promise<void>;
}

/** Serves /metrics and /healthz: for `serve`, and for `daemon --listen`. */
export async function startMetricsServer(engine: Engine, logger: Logger, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const reply = async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return { status: 405, type: 'text/plain', body: 'method not allowed\n' };
      if (url.pathname === '/metrics') return { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: await prometheusMetrics(engine) };
      if (url.pathname === '/healthz') {
        const status = await engine.status();
        return { status: status.healthy ? 200 : 503, type: 'application/json', body: JSON.stringify(engine.secrets.redactDeep(status)) + '\n' };
      }
      return { status: 404, type: 'text/plain', body: 'not found: try /metrics or /healthz\n' };
    };
    reply().then(
      (r) => {
        res.writeHead(r.status, { 'content-type': r.type });
        res.end(req.method === 'HEAD' ? undefined : r.body);
      },
      (err: Error) => {
        logger.error(`serving ${url.pathname} failed: ${err.message}`);
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const a = server.address() as AddressInfo;
  const address = `${a.address}:${a.port}`;
  logger.info(`serving metrics on http://${address}/metrics`);
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections?.();
      }),
  };
}

/** Serves /metrics and /healthz until SIGINT or SIGTERM. */
export async function serveMetrics(engine: Engine, logger: Logger, host: string, port: number, onListening: (address: string) => void): Promise<void> {
  // Catch the signals before saying where it serves: whoever reads that may stop it at once.
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const server = await startMetricsServer(engine, logger, host, port);
    onListening(server.address);
    await stopped;
    await server.close();
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
}

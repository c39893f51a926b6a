import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine, Logger } from '@sutazai/backup-core';
import { prometheusMetrics } from './metrics.js';

/** Serves /metrics and /healthz until SIGINT or SIGTERM. */
export async function serveMetrics(engine: Engine, logger: Logger, host: string, port: number, onListening: (address: string) => void): Promise<void> {
  const server = createServer((req, res) => {
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
  // Catch the signals before saying where it serves: whoever reads that may stop it at once.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  onListening(`${address.address}:${address.port}`);
  logger.info(`serving metrics on http://${address.address}:${address.port}/metrics`);
  await stopped;
}

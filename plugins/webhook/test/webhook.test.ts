import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyThrough, sampleRunNotification } from '@sutazai/backup-testkit';
import { echoingReceiver } from '../../../test/helpers/notify-receivers.js';
import { startHttpReceiver, type HttpReceiver } from '../../../test/helpers/servers.js';
import webhook, { signBody } from '../src/index.js';

describe('webhook', () => {
  let http: HttpReceiver;
  let answers: number[];

  beforeAll(async () => {
    answers = [];
    http = await startHttpReceiver(() => ({ status: answers.shift() ?? 202, body: { received: true } }));
  });
  afterAll(async () => {
    await http?.stop();
  });

  it('signs the exact body with HMAC-SHA256', () => {
    expect(signBody('{"a":1}', 'shared-secret')).toBe(`sha256=${createHmac('sha256', 'shared-secret').update('{"a":1}').digest('hex')}`);
  });

  it('retries a 503 with the same delivery id and body, then succeeds', async () => {
    answers.push(503);
    const [result] = await notifyThrough([{ plugin: webhook({ url: `${http.url}/in`, secret: 'shared-secret-1' }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'sent', attempts: 2 });
    const [first, second] = http.requests.slice(-2);
    expect(first!.headers['x-sutazai-delivery']).toBe(second!.headers['x-sutazai-delivery']);
    expect(second!.body).toBe(first!.body);
    expect(second!.headers['x-sutazai-signature']).toBe(signBody(second!.body, 'shared-secret-1'));
    expect(JSON.parse(second!.body)).toMatchObject({ kind: 'run', event: 'failure', report: { status: 'failed' } });
  });

  it('does not retry a 4xx answer', async () => {
    answers.push(422);
    const before = http.requests.length;
    const [result] = await notifyThrough([{ plugin: webhook({ url: `${http.url}/in` }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', attempts: 1 });
    expect(result!.error).toMatch(/^webhook: HTTP 422/);
    expect(http.requests.length - before).toBe(1);
  });

  it('leaves headers the plugin sets to the plugin', () => {
    expect(() => webhook({ url: 'http://127.0.0.1/x', headers: { 'Content-Type': 'text/plain' } })).toThrow(/set by the plugin/);
  });
});

describe('webhook: a server that echoes the request', () => {
  const token = 'url-token-4711';
  const secret = 'shared-secret-4712';
  const headers = { Authorization: 'Bearer bearer-4713', Cookie: 'session=cookie-4714; theme=dark', 'X-Api-Key': 'api-key-4715' };
  const all = [token, secret, 'bearer-4713', 'cookie-4714', 'api-key-4715'];
  const servers: HttpReceiver[] = [];

  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  async function failWith(echo: Parameters<typeof echoingReceiver>[1]): Promise<string> {
    const server = await startHttpReceiver(echoingReceiver(401, echo).handler);
    servers.push(server);
    const [result] = await notifyThrough([{ plugin: webhook({ url: `${server.url}/in?token=${token}&channel=ops`, secret, headers }) }], sampleRunNotification('failure'));
    expect(result).toMatchObject({ status: 'failed', attempts: 1 });
    expect(server.requests.at(-1)!.path).toContain(token);
    return result!.error!;
  }

  it.each([
    ['the URL', (req: { path: string }) => `no such hook: ${req.path}`, `token=***`],
    ['the Authorization header', (req: { headers: Record<string, unknown> }) => `bad credentials: ${String(req.headers.authorization)}`, 'bad credentials: ***'],
    ['the Cookie header', (req: { headers: Record<string, unknown> }) => `unknown session in ${String(req.headers.cookie)}`, 'unknown session in ***'],
    ['the API key', (req: { headers: Record<string, unknown> }) => `key ${String(req.headers['x-api-key'])} revoked`, 'key *** revoked'],
    ['the signature secret', () => `expected a body signed with ${secret}`, 'signed with ***'],
  ])('the failure quotes its reply echoing %s only masked', async (_what, echo, masked) => {
    const error = await failWith(echo as Parameters<typeof echoingReceiver>[1]);
    expect(error).toMatch(/^webhook: HTTP 401: /);
    expect(error).toContain(masked);
    for (const s of all) expect(error).not.toContain(s);
  });

  it('quotes at most a short line of a long reply', async () => {
    const error = await failWith((req) => `${'padding '.repeat(100)}\n${JSON.stringify(req.headers)}`);
    expect(error).not.toContain('\n');
    expect(error.length).toBeLessThan(300);
    expect(error).toMatch(/more characters\)$/);
  });
});


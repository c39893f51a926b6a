import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyThrough, sampleRunNotification } from '@sutazai/backup-testkit';
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

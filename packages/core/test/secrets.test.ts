import { describe, expect, it } from 'vitest';
import { isSecretKey, isSecretParam, maskSecretKeys, maskUrl, maskUrlsIn, quoteReply, SecretRegistry, urlCredentials } from '../src/secrets.js';

describe('credentials inside URLs', () => {
  it('finds the password and the values of secret-looking query parameters, decoded', () => {
    expect(urlCredentials('postgres://backup:p%40ss@db:5432/app')).toEqual(['p@ss']);
    expect(urlCredentials('https://hooks.example.com/in?token=tok-123&channel=ops')).toEqual(['tok-123']);
    expect(urlCredentials('https://h/x?api_key=K1&access_token=A2&X-Amz-Signature=S3&sig=S4&region=eu')).toEqual(['K1', 'A2', 'S3', 'S4']);
    expect(urlCredentials('https://h/x?page=2#token=frag')).toEqual([]);
  });

  it('masks them and leaves the rest of the URL as written', () => {
    expect(maskUrl('https://u:pw@h/in?token=abc&channel=ops#top')).toBe('https://u:***@h/in?token=***&channel=ops#top');
    expect(maskUrl('https://h/in?Password=x&auth=y&key=z')).toBe('https://h/in?Password=***&auth=***&key=***');
    // libpq's sslkey and sslcert name files, not secrets.
    expect(maskUrl('postgres://u@h/db?sslkey=/etc/k.pem&sslmode=verify-full')).toBe('postgres://u@h/db?sslkey=/etc/k.pem&sslmode=verify-full');
    expect(maskUrlsIn('POST https://h/x?token=abc failed; see https://docs/x?page=2')).toBe('POST https://h/x?token=*** failed; see https://docs/x?page=2');
    expect(isSecretParam('sessionid')).toBe(true);
    expect(isSecretParam('sslrootcert')).toBe(false);
  });
});

describe('credential headers', () => {
  it('are secret by name', () => {
    for (const name of ['Cookie', 'Authorization', 'Proxy-Authorization', 'X-Api-Key', 'X-Auth-Token', 'api-key']) expect(isSecretKey(name), name).toBe(true);
    for (const name of ['Content-Type', 'X-Request-Id', 'signatureHeader']) expect(isSecretKey(name), name).toBe(false);
  });

  it('register the parts a server may echo alone: the token after the scheme, a Basic password, each cookie', () => {
    const secrets = new SecretRegistry();
    secrets.addHeaders({
      Authorization: 'Bearer bearer-tok-1',
      'Proxy-Authorization': `Basic ${Buffer.from('proxyuser:proxy-pw-2').toString('base64')}`,
      Cookie: 'session=cookie-val-3; theme=darkmode',
      'X-Request-Id': 'not-a-secret',
    });
    expect(secrets.redact('bearer-tok-1 proxy-pw-2 cookie-val-3 darkmode not-a-secret')).toBe('*** *** *** *** not-a-secret');
  });
});

describe('config show', () => {
  it('masks URL query credentials and credential headers, registered or not', () => {
    const shown = maskSecretKeys(
      { notify: { hook: { url: 'https://h/in?token=abc&channel=ops', headers: { Cookie: 'sid=1', Authorization: 'Bearer x', Accept: 'application/json' } } } },
      new SecretRegistry(),
    );
    expect(shown).toEqual({
      notify: { hook: { url: 'https://h/in?token=***&channel=ops', headers: { Cookie: '***', Authorization: '***', Accept: 'application/json' } } },
    });
  });
});

describe('a quoted reply', () => {
  it('masks known secrets and URL credentials, keeps one line, and is short', () => {
    const secrets = new SecretRegistry();
    secrets.add('shared-secret-9');
    const echo = `{"error":"bad request",\n"url":"/in?token=tok-555","headers":{"x-secret":"shared-secret-9"},"see":"https://h/in?token=tok-555"}`;
    const quoted = quoteReply(echo, secrets);
    expect(quoted).not.toContain('shared-secret-9');
    expect(quoted).toContain('https://h/in?token=***');
    expect(quoted).not.toContain('\n');
    const long = quoteReply('x'.repeat(5000), secrets);
    expect(long.length).toBeLessThan(260);
    expect(long).toMatch(/\(4800 more characters\)$/);
  });
});

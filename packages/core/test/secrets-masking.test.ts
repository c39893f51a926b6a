/**
 * What secret redaction hides and what it leaves readable: option and header names, URL
 * passwords and query credentials, registered values in every form a server may echo them, and
 * the deep copies that go into reports and `config show`. A leak is the failure that matters; a
 * log made unreadable by `***` over common words is the other.
 */
import { describe, expect, it } from 'vitest';
import { isSecretKey, isSecretParam, maskSecretKeys, maskUrl, quoteReply, SecretRegistry, urlCredentials } from '../src/secrets.js';

describe('secret option names', () => {
  it('are recognised in the forms configs and environments spell them', () => {
    const secret = ['pass', 'passphrase', 'apiKey', 'AWS_ACCESS_KEY_ID', 'accessKey', 'private_key_id', 'privateKey', 'encryption_key', 'key', 'keyfilePassphrase', 'webhookUrl', 'signingSecret'];
    for (const name of secret) expect(isSecretKey(name), name).toBe(true);
  });

  it('names that hold where a secret is, or a key that is no secret, are not', () => {
    const plain = ['passwordFile', 'privateKeyPath', 'publicKey', 'keyring', 'gpg_key_id', 'keyPrefix', 'monkey'];
    for (const name of plain) expect(isSecretKey(name), name).toBe(false);
  });

  it('URL parameters: a name that only contains "file" or "path" is still a secret; libpq\'s sslkey names a file', () => {
    for (const name of ['profile_token', 'path_signature']) expect(isSecretParam(name), name).toBe(true);
    for (const name of ['sslkey', 'key_file', 'keypath']) expect(isSecretParam(name), name).toBe(false);
  });
});

describe('credentials inside URLs', () => {
  it('decodes them, "+" as a space, and keeps a value that does not decode as written', () => {
    expect(urlCredentials('https://h/x?token=a+b%2Bc')).toEqual(['a b+c']);
    expect(urlCredentials('postgres://backup:%E0%A4%A@db/app')).toEqual(['%E0%A4%A']);
  });

  it('finds only values of secret-looking names: not a flag without value, an empty value, or a path that looks secret', () => {
    expect(urlCredentials('https://h/list?keys&token=&page=2')).toEqual([]);
    expect(urlCredentials('https://h/auth/callback?state=xyz&code=1')).toEqual([]);
    expect(urlCredentials('https://h/login?next=/auth/done')).toEqual([]);
    expect(urlCredentials('postgres://u@h/db?sslkey=/etc/k.pem')).toEqual([]);
  });

  it('masks the password of a user with a longer name', () => {
    expect(maskUrl('postgres://backup:hunter22@db:5432/app')).toBe('postgres://backup:***@db:5432/app');
  });
});

describe('the registry', () => {
  it('registers strings and numbers of four characters or more, nothing else', () => {
    const secrets = new SecretRegistry();
    for (const v of [undefined, null, {}, true, 'abc', 123]) secrets.add(v);
    expect(secrets.size).toBe(0);
    secrets.add('4711');
    secrets.add(987654);
    expect(secrets.redact('pin 4711, code 987654, undefined null true [object Object]')).toBe('pin ***, code ***, undefined null true [object Object]');
  });

  it('masks a longer secret whole, even when a shorter one is part of it, and secrets with regex characters', () => {
    const secrets = new SecretRegistry();
    for (const v of ['abcd', 'abcdefgh', 'abcdefghijkl', 'p@ss.w0rd*(x)', 'a|b+c?']) secrets.add(v);
    expect(secrets.redact('abcdefghijkl abcdefgh abcd p@ss.w0rd*(x) a|b+c? pXssw0rd')).toBe('*** *** *** *** *** pXssw0rd');
  });

  it('registers the password inside a URL value, and the URL-encoded form of a value', () => {
    const secrets = new SecretRegistry();
    secrets.add('postgres://backup:hunter22@db/app');
    secrets.add('s3cret/with space');
    expect(secrets.redact('auth failed for hunter22; sent s3cret%2Fwith%20space')).toBe('auth failed for ***; sent ***');
  });

  it('addFromUrl takes the credentials of every URL in a text, and ignores what is not text', () => {
    const secrets = new SecretRegistry();
    secrets.addFromUrl('primary postgres://a:first-pw@h1/db, replica postgres://a:second-pw@h2/db');
    secrets.addFromUrl(undefined);
    secrets.addFromUrl(12345);
    secrets.addFromUrl('no url here');
    expect(secrets.redact('first-pw second-pw 12345')).toBe('*** *** 12345');
  });

  it("credential headers: the token after any spacing, a Basic password with an empty user, each cookie's value", () => {
    const secrets = new SecretRegistry();
    secrets.addCredential('Bearer  two-spaces-tok');
    secrets.addCredential('Token trailing-tok\r\n');
    secrets.addCredential(`Basic ${Buffer.from(':only-a-password').toString('base64')}`);
    secrets.addCredential('sid=cookie-one;theme=darkmode');
    secrets.addCredential(20261126);
    expect(secrets.redact('two-spaces-tok trailing-tok only-a-password cookie-one')).toBe('*** *** *** ***');
    expect(secrets.redact('darkmode')).toBe('***');
    expect(secrets.redact('20261126')).toBe('***');
  });

  it('does not take common words for secrets out of a token or a Basic value without a password', () => {
    const secrets = new SecretRegistry();
    // A bearer token is opaque: it is not decoded like Basic credentials.
    secrets.addCredential(`Bearer ${Buffer.from('x:report').toString('base64')}`);
    secrets.addCredential(`Basic ${Buffer.from('nocolonhere').toString('base64')}`);
    expect(secrets.redact('the report is ready; nocolonhere')).toBe('the report is ready; nocolonhere');
  });

  it('a fork starts with the values registered so far and adds its own without sharing them', () => {
    const shared = new SecretRegistry();
    shared.add('shared-secret');
    const fork = shared.fork();
    fork.add('request-only');
    shared.add('added-later');
    expect(fork.redact('shared-secret request-only added-later')).toBe('*** *** added-later');
    expect(shared.redact('shared-secret request-only added-later')).toBe('*** request-only ***');
    expect([shared.size, fork.size]).toEqual([2, 2]);
  });
});

describe('deep redaction (reports, alerts)', () => {
  it('redacts strings anywhere, turns errors into name and message, keeps dates and numbers, and ends cycles', () => {
    const secrets = new SecretRegistry();
    secrets.add('hunter22');
    const when = new Date('2026-11-26T02:00:00Z');
    const report: Record<string, unknown> = {
      message: 'login hunter22 failed',
      list: ['hunter22', 42, null, { deep: 'x hunter22' }],
      error: new TypeError('bad password hunter22'),
      when,
      ok: false,
    };
    report.self = report;
    expect(secrets.redactDeep(report)).toEqual({
      message: 'login *** failed',
      list: ['***', 42, null, { deep: 'x ***' }],
      error: { name: 'TypeError', message: 'bad password ***' },
      when,
      ok: false,
      self: '[circular]',
    });
  });
});

describe('config show', () => {
  it('masks values under secret names (numbers too), looks inside objects and lists, and leaves the rest', () => {
    const secrets = new SecretRegistry();
    secrets.add('registered-pw');
    const shown = maskSecretKeys(
      {
        password: 12345678,
        token: { file: '/run/secrets/token' },
        port: 5432,
        enabled: true,
        when: new Date('2026-11-26T02:00:00Z'),
        sources: [{ url: 'postgres://u:pw-in-url@h/db', note: 'uses registered-pw' }, 'https://h/x?sig=abc'],
      },
      secrets,
    );
    expect(shown).toEqual({
      password: '***',
      token: { file: '/run/secrets/token' },
      port: 5432,
      enabled: true,
      when: new Date('2026-11-26T02:00:00Z'),
      sources: [{ url: 'postgres://u:***@h/db', note: 'uses ***' }, 'https://h/x?sig=***'],
    });
  });
});

describe('a quoted reply', () => {
  it('is one trimmed line with single spaces, cut after 200 characters only', () => {
    const secrets = new SecretRegistry();
    expect(quoteReply('  \n{"error":  "bad"\n\t}\n', secrets)).toBe('{"error": "bad" }');
    expect(quoteReply('y'.repeat(200), secrets)).toBe('y'.repeat(200));
    expect(quoteReply('y'.repeat(201), secrets)).toBe(`${'y'.repeat(200)}... (1 more characters)`);
  });
});

describe("libpq's TLS parameters", () => {
  it('sslkey names a file and stays readable; sslpassword, the password of that key, is masked', () => {
    expect(maskUrl('postgres://u@h/db?sslkey=/etc/k.pem&sslpassword=key-pw-1&sslmode=verify-full')).toBe('postgres://u@h/db?sslkey=/etc/k.pem&sslpassword=***&sslmode=verify-full');
    expect(urlCredentials('mysql://u@h/db?ssl-key=/etc/k.pem&ssl_password=key-pw-2')).toEqual(['key-pw-2']);
  });
});

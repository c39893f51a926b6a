import { ConfigError } from '@sutazai/backup-core';
import { describe, expect, it } from 'vitest';
import { childEnv, describe as describeConn, parseUrl } from '../src/connection.js';
import postgres from '../src/index.js';
import { sourceConnection, postgresOptions } from '../src/options.js';

describe('connection URLs', () => {
  it('decodes user, password and database, and keeps libpq parameters', () => {
    const conn = parseUrl('postgresql://back%40up:p%40ss%3Aw%2Frd@db.internal:6543/donn%C3%A9es?sslmode=verify-full&application_name=x', 'url');
    expect(conn).toEqual({
      host: 'db.internal',
      port: 6543,
      user: 'back@up',
      password: 'p@ss:w/rd',
      database: 'données',
      params: { sslmode: 'verify-full', application_name: 'x' },
    });
  });

  it('takes a unix socket folder from ?host=, and defaults port, user and database', () => {
    const conn = parseUrl('postgres:///?host=/var/run/postgresql', 'url');
    expect(conn.host).toBe('/var/run/postgresql');
    expect(conn.port).toBe(5432);
    expect(conn.user).toBe('postgres');
    expect(conn.database).toBeUndefined();
  });

  it('refuses other schemes and unknown parameters without repeating the URL', () => {
    expect(() => parseUrl('mysql://u:hunter22@h/db', 'sources.db.url')).toThrow('sources.db.url: expected a postgres:// or postgresql:// URL');
    try {
      parseUrl('postgres://u:hunter22@h/db?sslmod=require', 'sources.db.url');
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain('unsupported URL parameter "sslmod"');
      expect((err as Error).message).not.toContain('hunter22');
    }
  });

  it('describes a connection without its password', () => {
    const conn = parseUrl('postgres://app:hunter22@[::1]:5433/app', 'url');
    expect(describeConn(conn)).toBe('app@[::1]:5433/app');
  });
});

describe('the environment of pg_dump and friends', () => {
  it('carries the whole connection, the password in PGPASSWORD', () => {
    const env = childEnv(parseUrl('postgres://app:hunter22@db:5433/app?sslmode=require', 'url'), 'sales');
    expect(env).toMatchObject({ PGHOST: 'db', PGPORT: '5433', PGUSER: 'app', PGDATABASE: 'sales', PGPASSWORD: 'hunter22', PGSSLMODE: 'require' });
  });

  it('leaves libpq its own password sources when none is configured', () => {
    const previous = process.env.PGPASSWORD;
    process.env.PGPASSWORD = 'from-the-environment';
    try {
      expect(childEnv(parseUrl('postgres://app@db/app', 'url'), undefined).PGPASSWORD).toBe('from-the-environment');
    } finally {
      if (previous === undefined) delete process.env.PGPASSWORD;
      else process.env.PGPASSWORD = previous;
    }
  });
});

describe('options', () => {
  it('lets host / port / user / password options override the URL', () => {
    const options = postgresOptions.parse({ url: 'postgres://a:b@h1:1/db1', host: 'h2', password: 'secret-2', databases: 'all' });
    expect(sourceConnection(options, 'sources.pg')).toMatchObject({ host: 'h2', port: 1, user: 'a', password: 'secret-2', database: 'db1' });
  });

  it('says which key is wrong when the config loads', () => {
    const errorOf = (raw: unknown) => {
      try {
        postgres(raw as never);
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected a ConfigError');
    };
    expect(errorOf({ databases: ['app'] }).message).toContain('postgres.url: set url (postgres://user@host:5432/database) or host');
    expect(errorOf({ url: 'postgres://h/' }).message).toContain('postgres.databases: name the databases to back up');
    expect(errorOf({ url: 'postgres://h/app', format: 'tar', jobs: 4 }).message).toContain('postgres.jobs: parallel restore needs format: custom');
    expect(errorOf({ url: 'postgres://h/app', lockWaitTimeout: 'soon' }).message).toContain('postgres.lockWaitTimeout');
    expect(errorOf({ url: 'postgres://h/app', dumpCompresion: 1 }).message).toContain('postgres.dumpCompresion: unknown option');
  });

  it('defaults to the URL database, gzip level 1 in pg_dump, one restore job and exact counts below 1 GiB', () => {
    const options = postgresOptions.parse({ url: 'postgres://h/app' });
    expect(options).toMatchObject({ format: 'custom', dumpCompression: 1, jobs: 1, exactCountMaxBytes: 1024 ** 3, globals: false, checks: [] });
  });
});

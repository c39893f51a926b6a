/**
 * docs/schemas/ holds one JSON Schema per `--json` document; users script against them. Every
 * command that takes `--json` has one, every schema compiles in Ajv's strict mode, and the
 * documents that need more than exit-codes.test.ts sets up are checked here against real
 * outputs: restore --into a real PostgreSQL server, a run whose destination and a notification
 * channel fail, and status --notify reporting what changed.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { runCli, tempDir, writeRc } from '../helpers/cli.js';
import { expectSchema, SCHEMA_DIR, SCHEMA_NAMES, schemaValidator } from '../helpers/json-schemas.js';
import { freePort, startHttpReceiver, startPostgres, type HttpReceiver, type PostgresServer } from '../helpers/servers.js';

/** The schemas of each command's `--json` document (besides error, which every command may print). */
const SCHEMAS: Record<string, string[]> = {
  run: ['run'],
  list: ['list'],
  ls: ['ls'],
  restore: ['restore-to', 'restore-into'],
  verify: ['verify'],
  prune: ['prune'],
  forget: ['forget'],
  'restore-test': ['restore-test'],
  status: ['status'],
  report: ['report'],
  recover: ['recover'],
};

let work: string;

beforeAll(async () => {
  work = await tempDir('sutazai-schemas-');
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('the schemas', () => {
  it('exist for every command that takes --json, for config show, the error document and the rc file', async () => {
    const help = (await runCli(['--help'], { cwd: work })).stdout;
    const commands = [...help.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    const helps = await Promise.all(commands.map((c) => runCli([c, '--help'], { cwd: work })));
    const withJson = commands.filter((_, i) => helps[i]!.stdout.includes('--json'));
    expect(withJson.sort()).toEqual(Object.keys(SCHEMAS).sort());
    expect(SCHEMA_NAMES).toEqual([...Object.values(SCHEMAS).flat(), 'config-show', 'error', 'rc'].sort());
  });

  it('compile in strict mode, and the README names each of them', async () => {
    const readme = await fsp.readFile(path.join(SCHEMA_DIR, 'README.md'), 'utf8');
    for (const name of SCHEMA_NAMES) {
      expect(() => schemaValidator(name), name).not.toThrow();
      expect(readme).toContain(`(${name}.schema.json)`);
    }
  });

  it('refuse a document that breaks them (a validator that accepts everything would pass every other test)', () => {
    expect(() => expectSchema('list', [{ id: 'not-an-id', profile: 'p', host: 'h', createdAt: '2026-11-26T02:00:00.000Z', bytes: 1, artifacts: [] }])).toThrow('/0/id must match pattern');
    expect(() => expectSchema('error', { error: { code: 'E_USAGE', message: 'm' }, extra: 1 })).toThrow('must NOT have additional properties');
  });
});

describe('documents that need their own set-up', () => {
  let pg: PostgresServer | undefined;
  let receiver: HttpReceiver | undefined;

  afterAll(async () => {
    await pg?.stop();
    await receiver?.stop();
  });

  it('restore --into: a database restored into a real PostgreSQL server', async () => {
    pg = await startPostgres();
    await pg.psql('CREATE DATABASE shop');
    await pg.psql('CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 100) g', 'shop');
    const dir = path.join(work, 'pg');
    await fsp.mkdir(dir);
    await writeRc(dir, `backupRoot: ./repo\nsources:\n  app-db: { use: postgres, url: "postgres://postgres@127.0.0.1:${pg.port}/shop", password: "\${PG_PASSWORD}" }\n`);
    const env = { PG_PASSWORD: pg.password };
    expect((await runCli(['run'], { cwd: dir, env })).code).toBe(0);

    await pg.psql('DROP DATABASE shop WITH (FORCE)');
    const r = await runCli(['restore', 'latest', '--source', 'app-db', '--into', `postgres://postgres:${pg.password}@127.0.0.1:${pg.port}`, '--json'], { cwd: dir, env });
    expect(r.code, r.stderr).toBe(0);
    const result = r.json();
    expectSchema('restore-into', result);
    expect(result.restored).toEqual([{ source: 'app-db', file: 'app-db.shop.pgdump.zst', into: `postgres://postgres:***@127.0.0.1:${pg.port}` }]);
    expect((await pg.psql('SELECT count(*) FROM orders', 'shop')).trim()).toBe('100');
  });

  it('run --json of a run whose destination refuses connections, with a channel that delivers and one that fails', async () => {
    receiver = await startHttpReceiver((req) => (req.path === '/refuse' ? { status: 400, body: 'no' } : undefined));
    const dir = path.join(work, 'failing');
    await writeTree(path.join(dir, 'data'), { 'a.txt': 'a\n' });
    const port = await freePort();
    await writeRc(dir, `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
destinations:
  offsite: { use: s3, bucket: offsite, endpoint: "http://127.0.0.1:${port}", forcePathStyle: true, region: us-east-1, accessKeyId: key, secretAccessKey: secret }
notify:
  ops: { use: webhook, url: "${receiver.url}/hook" }
  broken: { use: webhook, url: "${receiver.url}/refuse" }
  quiet: { use: webhook, url: "${receiver.url}/quiet", on: [success] }
checks: { maxAge: 1h }
`);
    const r = await runCli(['run', '--json'], { cwd: dir });
    expect(r.code).toBe(1);
    const report = r.json();
    expectSchema('run', report);
    expect(report.destinations).toEqual([expect.objectContaining({ name: 'offsite', status: 'failed', code: 'E_DESTINATION', error: expect.stringContaining('ECONNREFUSED') })]);
    expect(report.errors).toEqual([expect.objectContaining({ stage: 'replicate', plugin: 'destinations.offsite' })]);
    const channels = Object.fromEntries(report.notifications.map((n: { channel: string; status: string }) => [n.channel, n.status]));
    expect(channels).toEqual({ 'notify.ops': 'sent', 'notify.broken': 'failed', 'notify.quiet': 'skipped' });

    // status --notify: the replication failure began, and with it the warnings that nothing is
    // off site yet (3-2-1, offsite lag); the channels hear about each.
    const status = await runCli(['status', '--notify', '--json'], { cwd: dir });
    expect(status.code).toBe(1);
    const doc = status.json();
    expectSchema('status', doc);
    expect(doc.changes.map((c: { name: string; state: string }) => `${c.state} ${c.name}`)).toEqual(['begin replication', 'begin 3-2-1', 'begin offsite-lag']);
    expect(doc.notifications.length).toBeGreaterThan(0);
  });
});

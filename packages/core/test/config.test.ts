import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { loadConfig, parseInterval, pluginPackageName } from '../src/config.js';
import { SecretRegistry, maskSecretKeys } from '../src/secrets.js';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-config-'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

// A hook-only plugin in a file, resolved by a path relative to the rc file.
const plugin = `export default function (options) { return { name: 'probe', apply() {} }; }\n`;

async function load(yaml: string, env: NodeJS.ProcessEnv = {}, secrets = new SecretRegistry()) {
  await fsp.writeFile(path.join(dir, '.sutazai-backuprc'), yaml);
  await fsp.writeFile(path.join(dir, 'probe.mjs'), plugin);
  return loadConfig({ cwd: dir, env, secrets });
}

async function issuesOf(promise: Promise<unknown>): Promise<string[]> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
}

const base = 'backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs }\n';

describe('loadConfig', () => {
  it('reads the limits: a source\'s timeout and priority (not passed to its plugin), a profile\'s timeout and failFast', async () => {
    const config = await load(
      'backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs, timeout: 10min, priority: 5, note: x }\nprofiles:\n  nightly: { sources: "*", timeout: 90, failFast: true }\n  plain: { sources: "*" }\n',
    );
    expect(config.sources[0]!.settings).toEqual({ timeout: 600_000, priority: 5 });
    expect(config.sources[0]!.options).toEqual({ note: 'x' });
    expect(config.profiles.nightly).toMatchObject({ timeoutMs: 90_000, failFast: true });
    expect(config.profiles.plain).toMatchObject({ timeoutMs: undefined, failFast: false });
    const issues = await issuesOf(load('backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs, timeout: 2mo, priority: 1.5 }\nprofiles:\n  p: { timeout: soon }\n'));
    expect(issues.map((i) => i.split(':')[0])).toEqual(expect.arrayContaining(['profiles.p.timeout']));
    const sourceIssues = await issuesOf(load('backupRoot: ./repo\nsources:\n  one: { use: ./probe.mjs, timeout: 2mo, priority: 1.5 }\n'));
    expect(sourceIssues.map((i) => i.split(':')[0]).sort()).toEqual(['sources.one.priority', 'sources.one.timeout']);
  });

  it('resolves backupRoot from the rc file folder and makes one default profile', async () => {
    const config = await load(base);
    expect(config.file).toBe(path.join(dir, '.sutazai-backuprc'));
    expect(config.backupRoot).toBe(path.join(dir, 'repo'));
    expect(Object.keys(config.profiles)).toEqual(['default']);
    expect(config.profiles.default!.sources).toEqual(['one']);
    expect(config.profiles.default!.retention).toEqual({ daily: 7, weekly: 4, monthly: 12 });
    expect(config.compression).toBe('zstd');
    expect(config.checks).toMatchObject({ maxAgeMs: 26 * 3600_000, maxStorageUsage: 0.85 });
  });

  it('refuses a backupRoot that is a file, naming the key, and accepts one not made yet', async () => {
    await fsp.writeFile(path.join(dir, 'repo'), 'not a folder');
    expect(await issuesOf(load(base))).toEqual([`backupRoot: ${path.join(dir, 'repo')} exists and is not a folder`]);
    await fsp.rm(path.join(dir, 'repo'));
    expect((await load(base)).backupRoot).toBe(path.join(dir, 'repo'));
  });

  it('interpolates ${VAR} and ${VAR:-default}, and $${ stays literal', async () => {
    const config = await load('backupRoot: ${ROOT:-./fallback}\nhost: ${HOST_NAME}\nsources:\n  one: { use: ./probe.mjs, note: "$${NOT_A_VAR}" }\n', {
      HOST_NAME: 'box-1',
    });
    expect(config.backupRoot).toBe(path.join(dir, 'fallback'));
    expect(config.host).toBe('box-1');
    expect(config.sources[0]!.options.note).toBe('${NOT_A_VAR}');
  });

  it('names every missing variable with its key path', async () => {
    const issues = await issuesOf(load('backupRoot: ${A}\nsources:\n  one: { use: ./probe.mjs, list: [x, "${B}"] }\n'));
    expect(issues).toEqual([
      'backupRoot: environment variable A is not set (set it, or write ${A:-default})',
      'sources.one.list[1]: environment variable B is not set (set it, or write ${B:-default})',
    ]);
  });

  it('registers secrets: values under secret-looking keys, URL passwords, secret-named variables', async () => {
    const secrets = new SecretRegistry();
    await load(
      `${base}notify:\n  n: { use: ./probe.mjs, password: literal-pass-1, url: "smtp://u:url-pass-2@mail:587", token: "\${TOKEN_VAR}", api: "\${API_SECRET}" }\n`,
      { TOKEN_VAR: 'tok-3333', API_SECRET: 'env-secret-4' },
      secrets,
    );
    expect(secrets.redact('a literal-pass-1 b url-pass-2 c tok-3333 d env-secret-4')).toBe('a *** b *** c *** d ***');
  });

  it('checks profiles, names and durations', async () => {
    const issues = await issuesOf(
      load(`${base}profiles:\n  "bad name": { sources: [one] }\n  ok: { sources: [one, two] }\nchecks: { maxAge: soon, maxStorageUsage: 150% }\n`),
    );
    expect(issues).toEqual(
      expect.arrayContaining([
        'checks.maxAge: expected a duration like "26h", "90min", "2d" or "1h30min" (units: s, min, h, d, w), or a number of seconds',
        'checks.maxStorageUsage: expected a percentage like "85%"',
      ]),
    );
    const issues2 = await issuesOf(load(`${base}profiles:\n  "bad name": { sources: [one] }\n  ok: { sources: [one, two] }\n`));
    expect(issues2).toEqual([
      'profiles.bad name: names may hold letters, digits, "-" and "_" (no dots or spaces), up to 63 characters',
      'profiles.ok.sources[1]: unknown source "two" (sources: one)',
    ]);
  });

  it('checks a destination\'s retention setting before loading it', async () => {
    const issues = await issuesOf(load(`${base}destinations:\n  d: { use: ./probe.mjs, retention: { daily: -1, often: 2 } }\n`));
    expect(issues).toEqual(
      expect.arrayContaining([expect.stringMatching(/^destinations\.d\.retention\.daily: /), 'destinations.d.retention.often: unknown option (check its spelling in the plugin README)']),
    );
  });

  it('refuses a retention that keeps nothing, naming the key, wherever it is set', async () => {
    const keepsNothing = /^keeps no snapshots: set at least one of last, hourly, daily, weekly, monthly, yearly above 0, or within to a duration above 0/;
    const at = async (yaml: string) => (await issuesOf(load(yaml))).map((line) => line.split(': ')[0] + (keepsNothing.test(line.slice(line.indexOf(': ') + 2)) ? '' : ' (other)'));
    expect(await at(`${base}retention: { last: 0 }\n`)).toEqual(['retention']);
    expect(await at(`${base}profiles:\n  daily: { sources: "*", retention: { last: 0, daily: 0 } }\n`)).toEqual(['profiles.daily.retention']);
    expect(await at(`${base}destinations:\n  offsite: { use: ./probe.mjs, retention: { within: 0d } }\n`)).toEqual(['destinations.offsite.retention']);
  });

  it('refuses "m" in every duration, naming the rc file, the key and both readings', async () => {
    const rc = path.join(dir, '.sutazai-backuprc');
    const ambiguous = (text: string) => `"${text}" is ambiguous ("m" is minutes in some tools, months in others): write`;
    const yaml =
      `${base}retention: { within: 6m }\nprofiles:\n  daily: { sources: "*", retention: { within: 1y6m } }\n` +
      `notify:\n  ops: { use: ./probe.mjs, throttle: 30m }\nchecks: { maxAge: 90m }\n`;
    const err = await load(yaml).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).file).toBe(rc);
    expect((err as Error).message).toContain(rc);
    expect((err as ConfigError).issues).toEqual([
      { path: 'profiles.daily.retention.within', message: `${ambiguous('1y6m')} "1y6min" for minutes or "1y6mo" for months` },
      { path: 'retention.within', message: `${ambiguous('6m')} "6min" for minutes or "6mo" for months` },
      { path: 'checks.maxAge', message: `${ambiguous('90m')} "90min" for minutes or "90mo" for months` },
    ]);
    // The notifier's settings are checked with its plugin, once the rc file's own keys pass.
    const throttle = await issuesOf(load(`${base}notify:\n  ops: { use: ./probe.mjs, throttle: 30m }\n`));
    expect(throttle).toEqual([`notify.ops.throttle: ${ambiguous('30m')} "30min" for minutes or "30mo" for months`]);
  });

  it('reads min, mo and compounds the same way in every option; fixed intervals refuse months', async () => {
    const config = await load(`${base}retention: { within: 1y6mo }\nnotify:\n  ops: { use: ./probe.mjs, throttle: 1h30min }\nchecks: { maxAge: 90min }\n`);
    expect(config.retention).toEqual({ within: '1y6mo' });
    expect(config.notifiers[0]!.settings.throttle).toBe(90 * 60_000);
    expect(config.checks.maxAgeMs).toBe(90 * 60_000);
    expect(await issuesOf(load(`${base}checks: { maxAge: 1mo }\n`))).toEqual([
      'checks.maxAge: "1mo": months and years have no fixed length here: write days or weeks (e.g. "30d", "52w")',
    ]);
  });

  it('says which package to add for a plugin that is not installed', async () => {
    const issues = await issuesOf(load('backupRoot: ./r\nsources:\n  s: { use: mongodb }\n'));
    expect(issues).toEqual(['sources.s.use: plugin "mongodb" is not installed: add it with `npm install @sutazai/backup-plugin-mongodb`']);
  });

  it('reads the sutazai-backup key of package.json', async () => {
    await fsp.writeFile(path.join(dir, 'probe.mjs'), plugin);
    await fsp.writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'x', 'sutazai-backup': { backupRoot: './pkg-repo', sources: { one: { use: './probe.mjs' } } } }));
    const config = await loadConfig({ cwd: dir, env: {} });
    expect(config.backupRoot).toBe(path.join(dir, 'pkg-repo'));
  });
});

describe('helpers', () => {
  it('maps short plugin names to packages', () => {
    expect(pluginPackageName('postgres')).toBe('@sutazai/backup-plugin-postgres');
    expect(pluginPackageName('@acme/backup-plugin-x')).toBe('@acme/backup-plugin-x');
  });

  it('parses intervals', () => {
    expect(parseInterval('26h')).toBe(26 * 3600_000);
    expect(parseInterval('90min')).toBe(90 * 60_000);
    expect(parseInterval('2d')).toBe(2 * 86_400_000);
    expect(parseInterval('soon')).toBeUndefined();
    expect(parseInterval('30m')).toBeUndefined();
    expect(parseInterval('1mo')).toBeUndefined();
  });

  it('config show masks secret keys and URL passwords', () => {
    const secrets = new SecretRegistry();
    const shown = maskSecretKeys({ a: { password: 'p1', url: 'postgres://u:pw@h/db', plain: 'visible' } }, secrets);
    expect(shown).toEqual({ a: { password: '***', url: 'postgres://u:***@h/db', plain: 'visible' } });
  });
});

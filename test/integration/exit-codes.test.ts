/**
 * The exit-code contract, command by command: 0 all went well (healthy, for status), 1 something
 * failed or is unhealthy, 2 a usage or config error, 75 another run holds the lock. Each case is
 * set up for real (a live process holding the lock, a broken rc file, a damaged copy, a server
 * that refuses connections), and every `--json` document it prints is checked against its schema
 * in docs/schemas/. The last test checks that every command of `--help` went through the matrix.
 */
import { chmodSync, existsSync, promises as fsp } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { REPO_ROOT, runCli, startCli, tempDir, writeRc, type CliOptions, type CliResult } from '../helpers/cli.js';
import { expectSchema } from '../helpers/json-schemas.js';
import { freePort } from '../helpers/servers.js';

type Code = 0 | 1 | 2 | 75;

/** Which codes apply to each command (75: only the commands that take the run lock). */
const MATRIX: Record<string, Code[]> = {
  run: [0, 1, 2, 75],
  list: [0, 1, 2],
  restore: [0, 1, 2],
  verify: [0, 1, 2],
  prune: [0, 1, 2, 75],
  forget: [0, 1, 2, 75],
  'restore-test': [0, 1, 2],
  status: [0, 1, 2],
  'config validate': [0, 2],
  'config show': [0, 2],
  init: [0, 1, 2],
  schedule: [0, 2],
  'systemd print': [0, 2],
  'systemd on-failure': [0, 2],
  daemon: [0, 2, 75],
  metrics: [0, 1, 2],
  serve: [0, 1, 2],
  ls: [0, 1, 2],
  recover: [0, 1, 2],
  report: [0, 2],
  'config schema': [0],
};
const seen = new Map<string, Set<number>>();

let work: string;
let ids: string[] = [];

/** Runs `sutazai-backup <command> ...args`, checks the exit code, and records the case. */
async function cli(command: string, args: string[], code: Code, options: Partial<CliOptions> = {}): Promise<CliResult> {
  const r = await runCli([...command.split(' '), ...args], { cwd: work, ...options });
  expect(r.code, `${command} ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(code);
  if (!seen.has(command)) seen.set(command, new Set());
  seen.get(command)!.add(code);
  return r;
}

/** The `--json` error document of a failed command, checked against its schema. */
function jsonError(r: CliResult): { code: string; message: string } {
  const doc = r.json();
  expectSchema('error', doc);
  return doc.error;
}

const RC = `backupRoot: ./repo
retention: { last: 10 }
sources:
  configs: { use: files, paths: [./data/config] }
  notes: { use: files, paths: [./data/notes] }
destinations:
  offsite: { use: local, path: ./offsite }
profiles:
  nightly: { schedule: "0 2 * * *", sources: "*" }
checks: { maxAge: 26h }
`;

beforeAll(async () => {
  work = await tempDir('sutazai-exit-codes-');
  await writeTree(path.join(work, 'data'), { config: { 'app.yaml': 'a: 1\n' }, notes: { 'todo.txt': 'back up\n' } });
  await writeRc(work, RC);
  await writeRc(work, 'backupRoot: ./repo\nsources: [unclosed\n', 'broken.yaml');
  await writeRc(work, RC.replace('./data/config', './data/gone'), 'missing-source.yaml');
  await writeRc(work, RC.replace('"0 2 * * *"', '"61 2 * * *"'), 'bad-cron.yaml');
  await writeRc(work, RC.replace('./repo', '${BACKUP_ROOT_NOT_SET}'), 'missing-var.yaml');
  await writeRc(work, RC.replace('sources:\n', 'sources:\n  vectors: { use: mongodb }\n'), 'unknown-plugin.yaml');
  // A backupRoot whose state/ is a file: the run history cannot be read.
  await fsp.mkdir(path.join(work, 'repo-broken'), { mode: 0o700 });
  await fsp.writeFile(path.join(work, 'repo-broken', 'state'), 'not a folder\n');
  await writeRc(work, RC.replace('./repo', './repo-broken'), 'history-unreadable.yaml');
  // A destination whose server refuses connections: nothing listens on this loopback port.
  const port = await freePort();
  await writeRc(
    work,
    RC.replace('{ use: local, path: ./offsite }', `{ use: s3, bucket: offsite, endpoint: "http://127.0.0.1:${port}", forcePathStyle: true, region: us-east-1, accessKeyId: key, secretAccessKey: secret }`),
    'refused.yaml',
  );
  for (let i = 0; i < 2; i++) {
    const r = await runCli(['run', '--json'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    ids.push(r.json().snapshot);
  }
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('configuration commands', () => {
  it('config validate: 0 when every plugin loads, 2 for a plugin that is not installed', async () => {
    expect((await cli('config validate', [], 0)).stdout).toBe(`ok: ${path.join(work, '.sutazai-backuprc')}: 2 source(s), 1 destination(s), 0 notifier(s)\n`);
    const r = await cli('config validate', ['--config', 'unknown-plugin.yaml'], 2);
    expect(r.stderr).toContain('unknown-plugin.yaml');
    expect(r.stderr).toContain('sources.vectors');
    expect(r.stderr).toContain('@sutazai/backup-plugin-mongodb');
  });

  it('config show: 0 with its JSON document, 2 for a missing ${VAR}', async () => {
    const shown = (await cli('config show', [], 0)).json();
    expectSchema('config-show', shown);
    expect(shown).toMatchObject({ file: path.join(work, '.sutazai-backuprc'), backupRoot: path.join(work, 'repo') });
    const r = await cli('config show', ['--config', 'missing-var.yaml'], 2);
    expect(r.stderr).toMatch(/missing-var\.yaml: backupRoot: .*BACKUP_ROOT_NOT_SET/);
  });

  it('init: 0 in an empty folder, 2 when the rc file exists, 1 when the folder cannot be written', async () => {
    const dir = await tempDir();
    try {
      await cli('init', [], 0, { cwd: dir });
      expect(existsSync(path.join(dir, '.sutazai-backuprc'))).toBe(true);
      expect((await cli('init', [], 2, { cwd: dir })).stderr).toMatch(/already exists \(use --force to overwrite\)/);
      // A folder the user may read but not write (root would write anyway: run as nobody).
      const readOnly = path.join(dir, 'read-only');
      await fsp.mkdir(readOnly);
      chmodSync(dir, 0o755);
      chmodSync(readOnly, 0o755);
      const r = await cli('init', [], 1, { cwd: readOnly, uid: 65534, gid: 65534 });
      expect(r.stderr).toMatch(/EACCES/);
      expect(await fsp.readdir(readOnly)).toEqual([]);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('schedule and systemd print: 0, and 2 for a schedule that is not cron', async () => {
    expect((await cli('schedule', [], 0)).stdout).toMatch(/^0 2 \* \* \* .* run --profile nightly/m);
    expect((await cli('systemd print', [], 0)).stdout).toContain('OnCalendar=');
    for (const command of ['schedule', 'systemd print']) {
      expect((await cli(command, ['--config', 'bad-cron.yaml'], 2)).stderr).toContain('profiles.nightly.schedule');
    }
  });

  it('metrics: 0 with the gauges, 1 when the run history cannot be read (no stack trace), 2 for a broken rc file', async () => {
    const text = (await cli('metrics', [], 0)).stdout;
    expect(text).toMatch(/^sutazai_backup_healthy\{host="[^"]+"\} 1$/m);
    expect(text).toMatch(/^sutazai_backup_snapshots\{host="[^"]+"\} 2$/m);
    const unreadable = (await cli('metrics', ['--config', 'history-unreadable.yaml'], 1)).stderr;
    expect(unreadable).toContain(`cannot read the run history ${path.join(work, 'repo-broken', 'state', 'history.jsonl')}`);
    expect(unreadable).not.toMatch(/\n\s+at /);
    expect((await cli('metrics', ['--config', 'broken.yaml'], 2)).stderr).toContain('broken.yaml');
  });

  it('serve: 0 when stopped, 1 when the port is taken, 2 for a --listen that is not host:port', async () => {
    const serving = startCli(['serve', '--listen', '127.0.0.1:0'], { cwd: work });
    await new Promise<void>((resolve) => serving.child.stdout!.on('data', (d: Buffer) => d.toString().includes('serving http://') && resolve()));
    serving.child.kill('SIGTERM');
    expect((await serving.result).code).toBe(0);
    seen.set('serve', new Set([0]));

    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      expect((await cli('serve', ['--listen', `127.0.0.1:${port}`], 1)).stderr).toContain('EADDRINUSE');
    } finally {
      taken.close();
    }
    expect((await cli('serve', ['--listen', 'everywhere'], 2)).stderr).toContain('--listen everywhere: expected host:port');
  });
});

describe('run', () => {
  it('0: a snapshot of every source; with --only, of that source alone', async () => {
    const report = (await cli('run', ['--json'], 0)).json();
    expectSchema('run', report);
    expect(report.artifacts.map((a: { source: string }) => a.source).sort()).toEqual(['configs', 'notes']);
    const only = (await cli('run', ['--only', 'notes', '--json'], 0)).json();
    expectSchema('run', only);
    expect(only.artifacts.map((a: { source: string }) => a.source)).toEqual(['notes']);
    ids.push(report.snapshot, only.snapshot);
  });

  it('1: a source that cannot be read; the other source is committed in a partial snapshot', async () => {
    const report = (await cli('run', ['--config', 'missing-source.yaml', '--json'], 1)).json();
    expectSchema('run', report);
    expect(report).toMatchObject({ status: 'failed', snapshot: expect.any(String), failedSources: [expect.objectContaining({ source: 'configs', stage: 'collect' })] });
    expect(report.errors[0]).toMatchObject({ plugin: 'sources.configs', stage: 'collect' });
    expect(report.artifacts.map((a: { source: string }) => a.source)).not.toContain('configs');
    ids.push(report.snapshot);
  });

  it('2: a broken rc file, an unknown --only source or --profile, an unknown option', async () => {
    expect(jsonError(await cli('run', ['--config', 'broken.yaml', '--json'], 2)).code).toBe('E_CONFIG');
    expect(jsonError(await cli('run', ['--only', 'nope', '--json'], 2)).message).toBe('--only nope: not a source of profile nightly (its sources: configs, notes)');
    expect(jsonError(await cli('run', ['--profile', 'weekly', '--json'], 2)).message).toBe('unknown profile "weekly" (profiles: nightly)');
    expect(jsonError(await cli('run', ['--bogus', '--json'], 2))).toEqual({ code: 'E_USAGE', message: "unknown option '--bogus'" });
    const r = await runCli(['list', '--json'], { cwd: work });
    expect(r.json().map((s: { id: string }) => s.id)).toEqual(ids);
  });
});

describe('reading commands', () => {
  it('list: 0, 1 when a destination refuses connections, 2 for an unknown --from', async () => {
    const list = (await cli('list', ['--json'], 0)).json();
    expectSchema('list', list);
    expect(list.map((s: { id: string }) => s.id)).toEqual(ids);
    expectSchema('list', (await cli('list', ['--from', 'offsite', '--json'], 0)).json());
    expect(jsonError(await cli('list', ['--config', 'refused.yaml', '--from', 'offsite', '--json'], 1))).toMatchObject({ code: 'E_DESTINATION', message: expect.stringContaining('ECONNREFUSED') });
    expect(jsonError(await cli('list', ['--from', 'nowhere', '--json'], 2))).toEqual({ code: 'E_USAGE', message: 'unknown destination "nowhere" (destinations: offsite)' });
  });

  it('restore: 0 by id prefix; 2 for an ambiguous prefix or no --to; 1 into a non-empty folder or for an unknown id', async () => {
    const out = path.join(work, 'restored');
    const done = (await cli('restore', [ids[0]!.slice(0, -2), '--to', out, '--json'], 0)).json();
    expectSchema('restore-to', done);
    expect(done.restored.map((r: { path: string }) => r.path).sort()).toEqual([path.join(out, 'configs'), path.join(out, 'notes')]);
    const day = ids[0]!.slice(0, 8);
    expect(jsonError(await cli('restore', [day, '--to', path.join(work, 'elsewhere'), '--json'], 2)).message).toMatch(new RegExp(`^snapshot id ${day} is ambiguous: `));
    expect(existsSync(path.join(work, 'elsewhere'))).toBe(false);
    expect(jsonError(await cli('restore', ['latest', '--json'], 2)).message).toBe('restore needs exactly one of --to DIR or --into URL');
    expect(jsonError(await cli('restore', ['latest', '--to', out, '--json'], 1))).toMatchObject({ code: 'E_RESTORE', message: expect.stringContaining('is not empty') });
    expect(jsonError(await cli('restore', ['20200101T000000Z-nightly-0000', '--to', out, '--json'], 1)).code).toBe('E_NOT_FOUND');
  });

  it('verify and restore-test: 0 on good copies, 1 on a damaged one, 2 for an unknown --from', async () => {
    expectSchema('verify', (await cli('verify', ['--all', '--json'], 0)).json());
    expectSchema('restore-test', (await cli('restore-test', ['--json'], 0)).json());

    // Damage the destination's copy of the first snapshot: same size, one byte flipped.
    const [host] = await fsp.readdir(path.join(work, 'offsite'));
    const artifact = path.join(work, 'offsite', host!, 'snapshots', ids[0]!, 'configs.tar.zst');
    const bytes = await fsp.readFile(artifact);
    const middle = bytes.length >> 1;
    bytes[middle] = bytes[middle]! ^ 0xff;
    await fsp.writeFile(artifact, bytes);

    const verified = (await cli('verify', ['--all', '--from', 'offsite', '--json'], 1)).json();
    expectSchema('verify', verified);
    expect(verified.snapshots.filter((s: { ok: boolean }) => !s.ok).map((s: { id: string }) => s.id)).toEqual([ids[0]]);
    const tested = (await cli('restore-test', [ids[0]!, '--from', 'offsite', '--json'], 1)).json();
    expectSchema('restore-test', tested);
    expect(tested.ok).toBe(false);
    const restore = await cli('restore', [ids[0]!, '--from', 'offsite', '--to', path.join(work, 'from-damaged'), '--json'], 1);
    expect(jsonError(restore).message).toContain('configs.tar.zst');
    expect(existsSync(path.join(work, 'from-damaged', 'configs'))).toBe(false);

    // Repaired, it verifies again (and status, which counts failed verifications, is healthy).
    bytes[middle] = bytes[middle]! ^ 0xff;
    await fsp.writeFile(artifact, bytes);
    expect((await cli('verify', ['--all', '--from', 'offsite', '--json'], 0)).json().ok).toBe(true);
    expect((await cli('restore-test', [ids[0]!, '--from', 'offsite', '--json'], 0)).json().ok).toBe(true);

    expect(jsonError(await cli('verify', ['--from', 'nowhere', '--json'], 2)).code).toBe('E_USAGE');
    expect(jsonError(await cli('restore-test', ['--from', 'nowhere', '--json'], 2)).code).toBe('E_USAGE');
  });

  it('status: 0 healthy, 1 when the newest snapshot is too old, 2 for a broken rc file', async () => {
    // The last run must have succeeded: the one of missing-source.yaml failed.
    ids.push((await cli('run', ['--json'], 0)).json().snapshot);
    const healthy = (await cli('status', ['--json'], 0)).json();
    expectSchema('status', healthy);
    expect(healthy.healthy).toBe(true);
    // Three days later (the engine's clock moved by SUTAZAI_BACKUP_NOW): older than the nightly
    // profile's maxAge (twice its schedule's interval: 48h).
    const later = new Date(Date.now() + 3 * 86_400_000).toISOString();
    const stale = (await cli('status', ['--json'], 1, { env: { SUTAZAI_BACKUP_NOW: later } })).json();
    expectSchema('status', stale);
    expect(stale.checks.find((c: { name: string }) => c.name === 'freshness')).toMatchObject({ ok: false });
    expect(jsonError(await cli('status', ['--config', 'broken.yaml', '--json'], 2)).code).toBe('E_CONFIG');
  });
});

describe('while a live run holds the lock', () => {
  it('run and prune exit 75; the commands that only read go on (0)', async () => {
    const marker = path.join(work, 'holding');
    const pause = path.join(REPO_ROOT, 'test/fixtures/pause-plugin.mjs');
    await writeRc(work, `${RC}plugins:\n  - { use: ${pause}, stage: archive, marker: ${marker} }\n`, 'holder.yaml');
    const holder = startCli(['run', '--config', 'holder.yaml'], { cwd: work });
    try {
      const end = Date.now() + 60_000;
      while (!existsSync(marker) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(marker)).toBe(true);

      for (const [command, args] of [['run', []], ['prune', []], ['forget', [ids[0]!]]] as const) {
        const error = jsonError(await cli(command, [...args, '--json'], 75));
        expect(error.code).toBe('E_LOCKED');
        expect(error.message).toMatch(/another run holds the lock \(run --profile nightly, pid \d+/);
      }
      expectSchema('list', (await cli('list', ['--json'], 0)).json());
      expectSchema('verify', (await cli('verify', ['--json'], 0)).json());
      expectSchema('restore-test', (await cli('restore-test', ['--json'], 0)).json());
      expectSchema('restore-to', (await cli('restore', ['latest', '--to', path.join(work, 'under-lock'), '--json'], 0)).json());
      expectSchema('status', (await cli('status', ['--json'], 0)).json());
      expectSchema('prune', (await cli('prune', ['--dry-run', '--json'], 0)).json());
      await cli('metrics', [], 0);
    } finally {
      holder.child.kill('SIGTERM');
      expect((await holder.result).code).toBe(143);
    }
    expect(existsSync(path.join(work, 'repo', 'state', 'lock'))).toBe(false);
  });
});

describe('prune', () => {
  it('1 when a destination refuses connections, 2 for an unknown --from or a broken rc file', async () => {
    expect(jsonError(await cli('prune', ['--config', 'refused.yaml', '--json'], 1)).code).toBe('E_DESTINATION');
    expect(jsonError(await cli('prune', ['--from', 'nowhere', '--json'], 2)).message).toBe('unknown destination "nowhere" (destinations: offsite)');
    expect(jsonError(await cli('prune', ['--config', 'broken.yaml', '--json'], 2)).code).toBe('E_CONFIG');
  });

  it('0: a prune that deletes, everywhere', async () => {
    await writeRc(work, RC.replace('retention: { last: 10 }', 'retention: { last: 1 }'), 'keep-one.yaml');
    const results = (await cli('prune', ['--config', 'keep-one.yaml', '--json'], 0)).json();
    expectSchema('prune', results);
    expect(results.map((r: { repository: string }) => r.repository)).toEqual(['backupRoot', 'destinations.offsite']);
    for (const r of results) {
      expect(r.kept.map((d: { id: string }) => d.id)).toEqual([ids.at(-1)]);
      expect(r.removed.map((d: { id: string }) => d.id).sort()).toEqual(ids.slice(0, -1).sort());
    }
    expect((await runCli(['list', '--json'], { cwd: work })).json().map((s: { id: string }) => s.id)).toEqual([ids.at(-1)]);
    expect((await runCli(['list', '--from', 'offsite', '--json'], { cwd: work })).json().map((s: { id: string }) => s.id)).toEqual([ids.at(-1)]);
  });
});

describe('forget', () => {
  it('0 for a full id, 1 for one that is not there, 2 for a prefix or latest', async () => {
    const kept = ids.at(-1)!;
    const forgotten = (await cli('forget', [kept, '--from', 'offsite', '--json'], 0)).json();
    expectSchema('forget', forgotten);
    expect(forgotten).toEqual({ repository: 'destinations.offsite', id: kept, suspect: null });
    expect((await runCli(['list', '--from', 'offsite', '--json'], { cwd: work })).json()).toEqual([]);
    expect((await runCli(['list', '--json'], { cwd: work })).json().map((s: { id: string }) => s.id)).toEqual([kept]);
    expect(jsonError(await cli('forget', [kept, '--from', 'offsite', '--json'], 1)).code).toBe('E_NOT_FOUND');
    expect(jsonError(await cli('forget', [kept.slice(0, 10), '--json'], 2)).code).toBe('E_USAGE');
    expect(jsonError(await cli('forget', ['latest', '--json'], 2)).code).toBe('E_USAGE');
  });
});

describe('unattended commands', () => {
  it('daemon: 0 when stopped by SIGTERM, 75 while another daemon runs for the repository, 2 for a schedule that is not cron', async () => {
    const first = startCli(['daemon'], { cwd: work });
    await new Promise<void>((resolve) => {
      let said = '';
      first.child.stderr!.on('data', (d: Buffer) => {
        said += d.toString();
        if (said.includes('daemon started')) resolve();
      });
    });
    expect((await cli('daemon', [], 75)).stderr).toContain(`another daemon runs for ${path.join(work, 'repo')}`);
    first.child.kill('SIGTERM');
    const stopped = await first.result;
    expect(stopped.code, stopped.stderr).toBe(0);
    seen.get('daemon')!.add(0);
    expect((await cli('daemon', ['--config', 'bad-cron.yaml'], 2)).stderr).toContain('profiles.nightly.schedule');
  });

  it('systemd on-failure: 0 (here: the run had reported its failure itself), 2 for a broken rc file', async () => {
    const reported = { MONITOR_SERVICE_RESULT: 'exit-code', MONITOR_EXIT_CODE: 'exited', MONITOR_EXIT_STATUS: '1' };
    expect((await cli('systemd on-failure', ['sutazai-backup-nightly.service'], 0, { env: reported })).stdout).toContain('already reported by the run');
    await cli('systemd on-failure', ['sutazai-backup-nightly.service', '--config', 'broken.yaml'], 2, { env: reported });
  });
});

describe('snapshot contents, recovery and the history', () => {
  it('ls: 0 with its JSON document, 1 for a path that matches nothing, 2 without a snapshot', async () => {
    expectSchema('ls', (await cli('ls', ['latest', '--json'], 0)).json());
    expect(jsonError(await cli('ls', ['latest', 'no/such/path', '--json'], 1)).code).toBe('E_NOT_FOUND');
    await cli('ls', [], 2);
  });

  it('recover: 0 for a whole plan, 1 when a target is in the way, 2 without --to or --plan', async () => {
    // Earlier cases forget and damage snapshots: a fresh run puts every source at offsite again.
    expect((await runCli(['run'], { cwd: work })).code).toBe(0);
    expectSchema('recover', (await cli('recover', ['--from', 'offsite', '--plan', '--json'], 0)).json());
    const to = path.join(work, 'recovered');
    await writeTree(path.join(to, 'configs'), { 'in-the-way.txt': 'x\n' });
    expect(jsonError(await cli('recover', ['--from', 'offsite', '--to', to, '--json'], 1)).code).toBe('E_RESTORE');
    expect(jsonError(await cli('recover', ['--from', 'offsite', '--json'], 2)).code).toBe('E_USAGE');
  });

  it('report: 0 with its JSON document, 2 for a bad --days; config schema: 0', async () => {
    expectSchema('report', (await cli('report', ['--json'], 0)).json());
    await cli('report', ['--days', 'none'], 2);
    expect((await cli('config schema', [], 0)).json()).toMatchObject({ title: '.sutazai-backuprc' });
  });
});

describe('the matrix', () => {
  it('covers every command of --help with each exit code that applies to it', async () => {
    const commands = async (args: string[]) => {
      const help = (await runCli([...args, '--help'], { cwd: work })).stdout;
      return [...help.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    };
    const listed: string[] = [];
    for (const c of await commands([])) {
      if (c === 'config' || c === 'systemd') for (const sub of await commands([c])) listed.push(`${c} ${sub}`);
      else listed.push(c);
    }
    expect(listed.sort()).toEqual(Object.keys(MATRIX).sort());
    for (const [command, codes] of Object.entries(MATRIX)) expect([...(seen.get(command) ?? [])].sort((a, b) => a - b), command).toEqual(codes);
  });
});

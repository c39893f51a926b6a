/**
 * The command source through the real command line: what a command prints is stored, restored
 * byte for byte and checked by the configured `check`; a command that fails in any way fails the
 * run and leaves no snapshot; secrets given to the command in `env` appear nowhere.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { programPrinting, sourceStreamChecks } from '@sutazai/backup-testkit';
import { committedSnapshots, logMessages, runCli, sourceProject, tempDir } from '../../../test/helpers/cli.js';

/** 5 MB of deterministic bytes (all 256 values, NULs included), printed by a Node one-liner. */
const GENERATOR = [
  process.execPath,
  '-e',
  "const b=Buffer.alloc(5e6);let x=7;for(let i=0;i<b.length;i++){x=(x*1103515245+12345)>>>0;b[i]=x>>>24}process.stdout.write(b)",
];

function expectedBytes(): Buffer {
  const b = Buffer.alloc(5e6);
  let x = 7;
  for (let i = 0; i < b.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const yamlList = (argv: string[]) => `[${argv.map((a) => JSON.stringify(a)).join(', ')}]`;

let work: string;
beforeAll(async () => {
  work = await tempDir('sutazai-command-');
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

function project(name: string, source: string): Promise<string> {
  return sourceProject(path.join(work, name), 'exported', 'command', source);
}


describe('command source', () => {
  it('stores what the command prints, restores it byte for byte, and runs the check in verify and restore-test', async () => {
    const dir = await project('roundtrip', `command: ${yamlList(GENERATOR)}\next: bin\nfilename: export.bin\ncheck: 'test "$(wc -c < "$SUTAZAI_BACKUP_FILE")" -eq 5000000 && head -c 4 | od -An -tx1 | grep -q .'`);
    const run = await runCli(['run', '--json'], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    const report = run.json();
    expect(report.status).toBe('success');

    const [id] = await committedSnapshots(dir);
    const manifest = JSON.parse(await fsp.readFile(path.join(dir, 'backups', 'snapshots', id!, 'manifest.json'), 'utf8'));
    const artifact = manifest.artifacts[0];
    expect(artifact).toMatchObject({ source: 'exported', plugin: 'command', file: 'exported.bin.zst', rawBytes: 5e6 });
    expect(artifact.meta.command).toBe(`${process.execPath} -e '${GENERATOR[2]}'`);

    const verify = await runCli(['verify', '--json'], { cwd: dir });
    expect(verify.code, verify.stderr).toBe(0);
    const checks = verify.json().snapshots[0].artifacts[0].checks;
    expect(checks).toEqual(expect.arrayContaining([{ name: 'check', ok: true, detail: 'exited 0' }]));

    const restore = await runCli(['restore', 'latest', '--to', path.join(dir, 'out')], { cwd: dir });
    expect(restore.code, restore.stderr).toBe(0);
    const restored = await fsp.readFile(path.join(dir, 'out', 'exported', 'export.bin'));
    expect(sha256(restored)).toBe(sha256(expectedBytes()));

    const test = await runCli(['restore-test', '--json'], { cwd: dir });
    expect(test.code, test.stdout + test.stderr).toBe(0);
    expect(test.json().artifacts[0].checks.map((c: { name: string }) => c.name)).toContain('check');
  });

  it.each([
    ['exits non-zero', `command: 'echo partial output; echo "dump: permission denied for table x" >&2; exit 3'`, /sources\.exported: command .* failed: sh -c exited with code 3: dump: permission denied for table x/],
    ['is killed', `command: 'echo partial output; kill -9 $$'`, /sources\.exported: command .* failed: sh -c was killed by SIGKILL/],
    ['prints nothing', `command: 'true'`, /sources\.exported: exported produced no data/],
    ['runs past its timeout', `command: 'echo started; sleep 30'\ntimeout: 1`, /sources\.exported: (command .* failed: it did not finish within 1 s \(timeout\)|did not finish within its timeout \(1 s\) and was stopped)/],
    ['runs in a folder that is not there', `command: [ls]\ncwd: ./no-such-folder`, /sources\.exported: cwd \/.*\/no-such-folder is not a folder/],
    ['cannot be run', `command: [/nonexistent/dump-tool, --all]`, /sources\.exported: command \/nonexistent\/dump-tool --all failed: dump-tool could not be run \(spawn \/nonexistent\/dump-tool ENOENT\)/],
  ])('a command that %s fails the run, naming the source, and no snapshot is committed', async (name, source, message) => {
    const dir = await project(`fails-${name.replace(/\W+/g, '-')}`, source);
    const started = Date.now();
    const run = await runCli(['run'], { cwd: dir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(message);
    expect(logMessages(run.stderr)).toMatch(/run failed: profile default, no snapshot committed/);
    expect(await committedSnapshots(dir)).toEqual([]);
    // The timeout stops the command: the run does not wait for its 30 s.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('a check that hangs is stopped by the timeout and fails verify, saying so', async () => {
    const dir = await project('check-timeout', `command: 'echo hello'\ncheck: 'if test -e hang; then sleep 30; fi; cat > /dev/null'\ntimeout: 1`);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    await fsp.writeFile(path.join(dir, 'hang'), '');
    const started = Date.now();
    const verify = await runCli(['verify', '--json'], { cwd: dir });
    expect(verify.code).toBe(1);
    const check = verify.json().snapshots[0].artifacts[0].checks.find((c: { name: string }) => c.name === 'check');
    expect(check).toMatchObject({ ok: false, detail: expect.stringMatching(/did not finish within 1 s \(timeout\)/) });
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('names a multi-line script on one line, shortened, in its error', async () => {
    const script = `set -eu\n${'echo "a long line of the script that goes on and on"\n'.repeat(5)}echo "gave up" >&2\nexit 9`;
    const dir = await project('long-script', `command: ${JSON.stringify(script)}`);
    const run = await runCli(['run', '--json'], { cwd: dir });
    expect(run.code).toBe(1);
    const message = run.json().errors[0].message as string;
    expect(message).toMatch(/^sources\.exported: command set -eu echo "a long line .{60,}\.\.\. failed: sh -c exited with code 9: gave up$/);
    expect(message).not.toContain('\n');
  });

  it('with allowEmpty, an empty output is a valid artifact', async () => {
    const dir = await project('empty-ok', `command: 'true'\nallowEmpty: true`);
    const run = await runCli(['run'], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    expect(await committedSnapshots(dir)).toHaveLength(1);
  });

  it('a failing check fails the run (nothing committed), and later verify and restore-test, with what the check said', async () => {
    const check = `check: 'grep -q hello && test ! -e stale || { echo "stale export in $SUTAZAI_BACKUP_FILE" >&2; exit 4; }'`;
    const bad = await project('bad-output', `command: 'echo goodbye'\n${check}`);
    const run = await runCli(['run'], { cwd: bad });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/check .* failed: sh -c exited with code 4: stale export in \//);
    expect(await committedSnapshots(bad)).toEqual([]);

    // Good at backup time, bad later: verify and restore-test say why.
    const dir = await project('bad-later', `command: 'echo hello'\n${check}`);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    await fsp.writeFile(path.join(dir, 'stale'), '');
    const verify = await runCli(['verify', '--json'], { cwd: dir });
    expect(verify.code).toBe(1);
    const failed = verify.json().snapshots[0].artifacts[0].checks.find((c: { name: string }) => c.name === 'check');
    expect(failed.ok).toBe(false);
    expect(failed.detail).toMatch(/check .* failed: sh -c exited with code 4: stale export in \//);
    const test = await runCli(['restore-test'], { cwd: dir });
    expect(test.code).toBe(1);
    expect(test.stdout).toMatch(/FAILED check: .*exited with code 4: stale export/);
  });

  it('gives the command its env but not the rest of ours (unless inheritEnv), and its secrets appear in no log, message or manifest', async () => {
    const marker = 'Mk7-secret-9f3a1c';
    // REDISCLI_AUTH is not a name core knows for a secret, and its value is written in the rc file
    // itself: the plugin's own rule (auth, cred) is what hides it.
    const literal = 'Lt4-auth-77e0b2';
    const printEnv = `echo "user=$DB_USER parent=$SUTAZAI_TEST_PARENT"; echo "connecting with $DB_PASSWORD and $REDISCLI_AUTH" >&2; exit 2`;
    const dir = await project('secrets', `command: ${JSON.stringify(printEnv)}\nenv: { DB_USER: backup, DB_PASSWORD: "\${TEST_DB_PASSWORD}", REDISCLI_AUTH: ${literal} }`);
    const env = { TEST_DB_PASSWORD: marker, SUTAZAI_TEST_PARENT: 'from-the-parent' };
    const failed = await runCli(['run', '--json'], { cwd: dir, env });
    expect(failed.code).toBe(1);
    expect(failed.json().errors[0].message).toMatch(/exited with code 2: connecting with \*\*\* and \*\*\*/);
    expect(failed.stdout + failed.stderr).not.toContain(marker);
    expect(failed.stdout + failed.stderr).not.toContain(literal);

    // The same without the failure: what the command saw of the environment is in the artifact.
    const ok = await project('env', `command: 'echo "user=$DB_USER parent=$SUTAZAI_TEST_PARENT"'\nenv: { DB_USER: backup, DB_PASSWORD: "\${TEST_DB_PASSWORD}" }`);
    // \$\${VAR} is how an rc file writes a literal \${VAR} (for the shell, not the rc loader).
    const inherit = await project('env-inherit', `command: 'echo "parent=$\${SUTAZAI_TEST_PARENT:-unset}"'\ninheritEnv: true`);
    for (const d of [ok, inherit]) expect((await runCli(['run'], { cwd: d, env })).code).toBe(0);
    for (const [d, expected] of [
      [ok, 'user=backup parent=\n'],
      [inherit, 'parent=from-the-parent\n'],
    ] as const) {
      const restore = await runCli(['restore', 'latest', '--to', path.join(d, 'out')], { cwd: d, env });
      expect(restore.code, restore.stderr).toBe(0);
      expect(await fsp.readFile(path.join(d, 'out', 'exported', 'exported.out'), 'utf8')).toBe(expected);
    }
    for (const d of [dir, ok]) {
      for (const id of await committedSnapshots(d)) {
        expect(await fsp.readFile(path.join(d, 'backups', 'snapshots', id, 'manifest.json'), 'utf8')).not.toContain(marker);
      }
    }
  });

  it('refuses bad options when the config loads, naming the key', async () => {
    for (const [source, key] of [
      ['command: [dump]\next: ../x', 'sources.exported.ext'],
      ['command: [dump]\nfilename: ../../etc/passwd', 'sources.exported.filename'],
      ['command: []', 'sources.exported.command'],
      ['command: [dump]\ntimeout: -1', 'sources.exported.timeout'],
    ] as const) {
      const dir = await project(`bad-${key.split('.').at(-1)}-${Math.random().toString(36).slice(2, 6)}`, source);
      const r = await runCli(['config', 'validate'], { cwd: dir });
      expect(r.code, source).toBe(2);
      expect(r.stderr, source).toContain(key);
    }
  });
});

describe('command source, outputs of 0 B to 1 MiB from programs that exit at once (testkit)', () => {
  const checks = sourceStreamChecks({
    use: 'command',
    runs: 13,
    fixture: async ({ size, data, dir }) => ({
      options: { command: await programPrinting(data, dir), ext: 'bin', filename: 'out.bin', ...(size === 0 ? { allowEmpty: true } : {}) },
      expected: { 'out.bin': data },
    }),
  });
  // Many backups beside a busy CPU: more than the default time on a loaded machine.
  for (const check of checks) it(check.name, check.run, 600_000);
});

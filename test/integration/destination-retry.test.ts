/**
 * Every destination operation is retried through core, not only replication's uploads: a
 * destination whose list, get, stat or delete fails once with a dropped connection still serves
 * `list --from`, `verify --from`, `restore --from` and `prune --from`; an authentication failure
 * is not tried again. The destination is a local folder behind a plugin that injects the faults
 * (a real dropped connection cannot be timed per operation) and counts the calls.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeTree } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, logMessages, runCli, tempDir, writeRc, type CliResult } from '../helpers/cli.js';

const FLAKY = `import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BackupError, defineDestination, LocalDestination, z } from ${JSON.stringify(path.join(REPO_ROOT, 'packages/core/dist/index.js'))};
const once = new Set((process.env.FLAKY_ONCE ?? '').split(',').filter(Boolean));
const auth = new Set((process.env.FLAKY_AUTH ?? '').split(',').filter(Boolean));
const calls = {};
function fault(op) {
  calls[op] = (calls[op] ?? 0) + 1;
  if (auth.has(op)) throw new BackupError('E_AUTH', 'flaky: ' + op + ': login refused');
  if (once.has(op) && calls[op] === 1) throw Object.assign(new Error('flaky: ' + op + ': connection reset by peer'), { code: 'ECONNRESET' });
}
process.on('exit', () => { if (process.env.FLAKY_CALLS) writeFileSync(process.env.FLAKY_CALLS, JSON.stringify(calls)); });
class Flaky extends LocalDestination {
  async list(prefix) { fault('list'); return super.list(prefix); }
  async get(key) { fault('get'); return super.get(key); }
  async getRange(key, offset, length) { fault('get'); return super.getRange(key, offset, length); }
  async stat(key) { fault('stat'); return super.stat(key); }
  async delete(key) { fault('delete'); return super.delete(key); }
}
export default defineDestination({
  name: 'flaky',
  options: z.object({ path: z.string() }).strict(),
  traits: { medium: 'local-disk', offsite: false },
  create: (options, ctx) => new Flaky(path.resolve(ctx.configDir, options.path)),
});
`;

let dir: string;
let first: string;
let second: string;

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult & { calls: Record<string, number>; log: string }> {
  const callsFile = path.join(dir, 'calls.json');
  await fsp.rm(callsFile, { force: true });
  const r = await runCli(args, { cwd: dir, env: { FLAKY_CALLS: callsFile, ...env } });
  const calls = JSON.parse(await fsp.readFile(callsFile, 'utf8').catch(() => '{}')) as Record<string, number>;
  return Object.assign(r, { calls, log: logMessages(r.stderr) });
}

beforeAll(async () => {
  dir = await tempDir('sutazai-destination-retry-');
  await writeTree(path.join(dir, 'data'), { 'app.yaml': 'model: llama3\n' });
  await fsp.writeFile(path.join(dir, 'flaky.mjs'), FLAKY);
  await writeRc(dir, 'backupRoot: ./backups\nhost: it-host\nsources:\n  configs: { use: files, paths: [./data] }\ndestinations:\n  drive: { use: ./flaky.mjs, path: ./drive }\nretention: { last: 10 }\n');
  for (const i of [1, 2]) {
    const run = await cli(['run', '--json'], { SUTAZAI_BACKUP_NOW: `2026-11-0${i}T02:00:00Z` });
    expect(run.code, run.stderr).toBe(0);
    if (i === 1) first = run.json().snapshot;
    else second = run.json().snapshot;
  }
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('a transient failure of a destination operation is retried through core', () => {
  it('list --from: the listing that failed once is listed', async () => {
    const r = await cli(['list', '--from', 'drive', '--json'], { FLAKY_ONCE: 'list' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().map((s: { id: string }) => s.id)).toEqual([first, second]);
    expect(r.calls.list).toBe(2);
    expect(r.log).toMatch(/destinations\.drive: listing snapshots\/ failed, retrying in \d+ ms/);
  });

  it('verify --from and restore --from: reads and checks that failed once succeed', async () => {
    const verify = await cli(['verify', '--all', '--from', 'drive', '--json'], { FLAKY_ONCE: 'get,stat,list' });
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.json().ok).toBe(true);
    expect(verify.calls.get).toBeGreaterThan(1);
    expect(verify.log).toMatch(/destinations\.drive: reading snapshots\/.* failed, retrying/);
    const restore = await cli(['restore', second, '--from', 'drive', '--to', path.join(dir, 'restored')], { FLAKY_ONCE: 'get' });
    expect(restore.code, restore.stderr).toBe(0);
    expect(await fsp.readFile(path.join(dir, 'restored', 'configs', dir.slice(1), 'data', 'app.yaml'), 'utf8')).toBe('model: llama3\n');
  });

  it('prune --from: deletions that failed once complete', async () => {
    await writeRc(dir, 'backupRoot: ./backups\nhost: it-host\nsources:\n  configs: { use: files, paths: [./data] }\ndestinations:\n  drive: { use: ./flaky.mjs, path: ./drive, retention: { last: 1 } }\nretention: { last: 10 }\n');
    const r = await cli(['prune', '--from', 'drive', '--json'], { FLAKY_ONCE: 'list,delete,stat', SUTAZAI_BACKUP_NOW: '2026-11-02T03:00:00Z' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()[0].removed.map((s: { id: string }) => s.id)).toEqual([first]);
    expect(r.log).toMatch(/destinations\.drive: deleting snapshots\/.* failed, retrying/);
    const list = await cli(['list', '--from', 'drive', '--json']);
    expect(list.json().map((s: { id: string }) => s.id)).toEqual([second]);
  });

  it('an authentication failure is not retried: one call, exit 1, no retry logged', async () => {
    const r = await cli(['list', '--from', 'drive', '--json'], { FLAKY_AUTH: 'list' });
    expect(r.code).toBe(1);
    expect(r.json().error.code).toBe('E_AUTH');
    expect(r.calls.list).toBe(1);
    expect(r.log).not.toMatch(/retrying/);
  });
});

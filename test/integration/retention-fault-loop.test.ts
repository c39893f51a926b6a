/**
 * The fault loop: 20 cycles of run / verify with a wrong key / a flipped bit in a manifest /
 * prune, on an encrypted repository with a local destination, four runs a day. After every
 * step, both places still hold every snapshot the retention policy keeps, computed here from the
 * ids the runs made (not by the tool's code), and each prune removes exactly what its dry run said.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeTree } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCli, tempDir, writeRc, type CliResult } from '../helpers/cli.js';

const HOST = 'loop-host';
const PASSPHRASE = `right-${randomBytes(8).toString('hex')}`;
const WRONG = `wrong-${randomBytes(8).toString('hex')}`;
const CYCLES = 20;
const START = Date.UTC(2026, 10, 1, 1);
const SIX_HOURS = 6 * 3_600_000;

let work: string;
beforeAll(async () => {
  work = await tempDir('sutazai-fault-loop-');
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

/** What `{ last: 2, daily: 3 }` keeps: the two newest, and the newest of each of the three latest days. */
function policyKeeps(ids: readonly string[]): string[] {
  const newestFirst = [...ids].sort().reverse();
  const kept = new Set(newestFirst.slice(0, 2));
  const newestOfDay = new Map<string, string>();
  for (const id of newestFirst) if (!newestOfDay.has(id.slice(0, 8))) newestOfDay.set(id.slice(0, 8), id);
  for (const id of [...newestOfDay.values()].slice(0, 3)) kept.add(id);
  return [...kept].sort();
}

/** A seeded generator: the same faults on every run of the test. */
function seeded(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
}

it('20 cycles of run, verify with a wrong key, a flipped bit in a manifest and prune never take either place below what the policy keeps', { timeout: 900_000 }, async () => {
  await writeTree(path.join(work, 'data'), { 'app.yaml': 'model: llama3\n', deep: { 'notes.txt': 'keep me\n' } });
  await writeRc(
    work,
    [
      'backupRoot: ./backups',
      `host: ${HOST}`,
      'retention: { last: 2, daily: 3 }',
      'encryption: { use: gpg, passphrase: "${BACKUP_ENCRYPTION_PASSPHRASE}" }',
      'sources:',
      '  configs: { use: files, paths: [./data] }',
      'destinations:',
      '  drive: { use: local, path: ./drive }',
      '',
    ].join('\n'),
  );
  const roots = { backupRoot: path.join(work, 'backups', 'snapshots'), drive: path.join(work, 'drive', HOST, 'snapshots') };
  const cli = (args: string[], at: number, passphrase = PASSPHRASE): Promise<CliResult> =>
    runCli(args, { cwd: work, env: { SUTAZAI_BACKUP_NOW: new Date(at).toISOString(), BACKUP_ENCRYPTION_PASSPHRASE: passphrase } });
  const held = async (where: keyof typeof roots): Promise<string[]> => {
    const names = existsSync(roots[where]) ? await fsp.readdir(roots[where]) : [];
    return names.filter((n) => existsSync(path.join(roots[where], n, 'manifest.json'))).sort();
  };
  const created: string[] = [];
  const expectPolicyHeld = async (step: string) => {
    const wanted = policyKeeps(created);
    for (const where of ['backupRoot', 'drive'] as const) {
      const now = await held(where);
      expect(now.length, `${step}: ${where} holds fewer snapshots than the policy keeps`).toBeGreaterThanOrEqual(wanted.length);
      expect(wanted.filter((id) => !now.includes(id)), `${step}: ${where} lost snapshots the policy keeps`).toEqual([]);
    }
  };

  const random = seeded(13);
  let flipped = 0;
  let suspectsSeen = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const t = START + cycle * SIX_HOURS;
    const run = await cli(['run', '--json'], t);
    expect(run.code, `cycle ${cycle} run: ${run.stderr}`).toBe(0);
    created.push(run.json().snapshot);
    await expectPolicyHeld(`cycle ${cycle} after run`);

    const where = cycle % 2 === 0 ? 'backupRoot' : 'drive';
    const verify = await cli(['verify', '--all', '--json', ...(where === 'drive' ? ['--from', 'drive'] : [])], t + 60_000, WRONG);
    expect(verify.code, `cycle ${cycle} verify with a wrong key`).toBe(1);
    await expectPolicyHeld(`cycle ${cycle} after verify`);

    // One flipped bit in one manifest, at either place.
    const place = random(2) === 0 ? 'backupRoot' : 'drive';
    const ids = await held(place);
    const file = path.join(roots[place], ids[random(ids.length)]!, 'manifest.json');
    const bytes = await fsp.readFile(file);
    const at = random(bytes.length);
    bytes[at] = bytes[at]! ^ (1 << random(8));
    await fsp.writeFile(file, bytes);
    flipped++;
    await expectPolicyHeld(`cycle ${cycle} after the bit flip`);

    const dry = await cli(['prune', '--dry-run', '--json'], t + 120_000);
    expect(dry.code, `cycle ${cycle} prune --dry-run: ${dry.stderr}`).toBe(0);
    const prune = await cli(['prune', '--json'], t + 120_000);
    expect(prune.code, `cycle ${cycle} prune: ${prune.stderr}`).toBe(0);
    const removed = (results: { repository: string; removed: { id: string }[] }[]) => results.map((r) => [r.repository, r.removed.map((d) => d.id)]);
    expect(removed(prune.json()), `cycle ${cycle}: prune removed what its dry run did not say`).toEqual(removed(dry.json()));
    suspectsSeen = Math.max(suspectsSeen, ...prune.json().map((r: { suspects: unknown[] }) => r.suspects.length));
    await expectPolicyHeld(`cycle ${cycle} after prune`);
  }
  // The faults were real: suspects were kept, and the policy still pruned what it drops.
  expect(flipped).toBe(CYCLES);
  expect(suspectsSeen).toBeGreaterThan(0);
  expect((await held('backupRoot')).length).toBeLessThan(CYCLES);
});

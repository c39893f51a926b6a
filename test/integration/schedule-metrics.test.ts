/**
 * Scheduling and monitoring: crontab lines and systemd units from the profiles' schedules, and
 * health metrics that a real Prometheus server scrapes from `sutazai-backup serve`.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTree } from '@sutazai/backup-testkit';
import { CLI_BIN, runCli, startCli, tempDir, writeRc } from '../helpers/cli.js';
import { startPrometheus } from '../helpers/prometheus.js';
import { freePort } from '../helpers/servers.js';

let work: string;
let rc: string;

beforeAll(async () => {
  work = await tempDir();
  await writeTree(path.join(work, 'data'), { 'a.txt': 'alpha\n' });
  rc = await writeRc(
    work,
    `backupRoot: ./repo
sources:
  configs: { use: files, paths: [./data] }
profiles:
  daily:  { schedule: "0 2 * * *", sources: "*", retention: { daily: 7 } }
  weekly: { schedule: "30 3 * * sun", sources: "*", retention: { weekly: 4 } }
  adhoc:  { sources: "*" }
checks: { restoreTest: { schedule: "0 5 * * 1-5" } }
`,
  );
});

afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

describe('schedules', () => {
  it('schedule prints a crontab line per scheduled profile and the restore test; runs wait for the lock', async () => {
    const r = await runCli(['schedule'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines).toEqual([
      `0 2 * * * exec ${process.execPath} ${CLI_BIN} run --profile daily --wait 6h --config ${rc}  # back up profile daily`,
      `30 3 * * sun exec ${process.execPath} ${CLI_BIN} run --profile weekly --wait 6h --config ${rc}  # back up profile weekly`,
      `0 5 * * 1-5 exec ${process.execPath} ${CLI_BIN} restore-test --config ${rc}  # restore test`,
    ]);
    // How to add them without replacing a crontab; never the pipe into `crontab -` that replaces it.
    expect(r.stdout).toContain('run `crontab -e` and paste them');
    expect(r.stdout).toContain('sutazai-backup schedule --system > /etc/cron.d/sutazai-backup');
    expect(r.stdout).not.toMatch(/^# install with: .*\| crontab -/m);
  });

  it('systemd print writes a oneshot service and a timer for each', async () => {
    const r = await runCli(['systemd', 'print'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('# /etc/systemd/system/sutazai-backup-daily.timer');
    expect(r.stdout).toContain('OnCalendar=*-*-* 02:00:00');
    expect(r.stdout).toContain('OnCalendar=Sun *-*-* 03:30:00');
    expect(r.stdout).toContain('OnCalendar=Mon..Fri *-*-* 05:00:00');
    expect(r.stdout).toContain(`ExecStart=${process.execPath} ${CLI_BIN} run --profile weekly --wait 6h --config ${rc}`);
    // 75 is no longer a success: a run that waited for the lock and gave up did not happen.
    expect(r.stdout).not.toContain('SuccessExitStatus=75');
    expect(r.stdout).not.toContain('adhoc');
  });

  it('a schedule that is not cron is a config error naming the key', async () => {
    const bad = await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data] }\nprofiles:\n  daily: { schedule: "daily at 2", sources: "*" }\n`, 'bad.yaml');
    const r = await runCli(['config', 'validate', '--config', bad], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/profiles\.daily\.schedule: not a cron schedule: expected 5 fields/);
  });
});

describe('metrics', () => {
  it('a real Prometheus scrapes sutazai-backup serve', async () => {
    const run = await runCli(['run', '--profile', 'daily', '--json'], { cwd: work });
    expect(run.code, run.stderr).toBe(0);
    const port = await freePort();
    const serve = startCli(['serve', '--listen', `127.0.0.1:${port}`], { cwd: work });
    const prometheus = await startPrometheus([`127.0.0.1:${port}`]);
    try {
      let result: Awaited<ReturnType<typeof prometheus.query>> = [];
      const deadline = Date.now() + 60_000;
      while (result.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        result = await prometheus.query('sutazai_backup_snapshots');
      }
      expect(result).toHaveLength(1);
      expect(result[0]!.value[1]).toBe('1');
      const success = await prometheus.query('sutazai_backup_last_run_success{profile="daily"}');
      expect(success.map((s) => s.value[1])).toEqual(['1']);
      // One freshness series per scheduled profile: the daily ran, the weekly is not due yet.
      const fresh = await prometheus.query('sutazai_backup_check_ok{check="freshness"}');
      expect(fresh.map((s) => `${s.metric.profile} ${s.value[1]}`).sort()).toEqual(['daily 1', 'weekly 1']);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      expect((await health.json()).healthy).toBe(true);
    } finally {
      await prometheus.stop();
      serve.child.kill('SIGTERM');
      const r = await serve.result;
      expect(r.code).toBe(0);
    }
  });
});

/**
 * The example rc files in examples/ stay valid as the plugins' options change: each one loads,
 * every plugin it names checks its options, and its secrets stay masked.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli } from '../helpers/cli.js';

describe('examples', () => {
  it('examples/sutazai-platform: the whole platform, 3-2-1, validates, and config show masks its secrets', async () => {
    const cwd = path.join(REPO_ROOT, 'examples', 'sutazai-platform');
    const env = {
      BACKUP_ENCRYPTION_PASSPHRASE: 'example-passphrase-Qm3v',
      BACKUP_PG_PASSWORD: 'example-pg-password-7Hd2',
      BACKUP_S3_ACCESS_KEY_ID: 'AKIAEXAMPLE0000',
      BACKUP_S3_SECRET_ACCESS_KEY: 'example-s3-secret-Zp81',
      BACKUP_SLACK_WEBHOOK: 'https://hooks.slack.com/services/T000/B000/example-slack-X9k',
    };
    const validate = await runCli(['config', 'validate'], { cwd, env });
    expect(validate.code, validate.stderr).toBe(0);
    expect(validate.stdout).toContain('8 source(s), 3 destination(s), 2 notifier(s)');

    const show = await runCli(['config', 'show'], { cwd, env });
    expect(show.code, show.stderr).toBe(0);
    for (const name of ['prometheus', 'grafana', 'ollama', 'postgres', 'sftp', 's3']) expect(show.stdout).toContain(`"use": "${name}"`);
    for (const secret of [env.BACKUP_ENCRYPTION_PASSPHRASE, env.BACKUP_PG_PASSWORD, env.BACKUP_S3_SECRET_ACCESS_KEY, 'example-slack-X9k']) {
      expect(show.stdout + show.stderr).not.toContain(secret);
    }

    const schedule = await runCli(['schedule'], { cwd, env });
    expect(schedule.code, schedule.stderr).toBe(0);
    for (const profile of ['daily', 'weekly', 'monthly']) expect(schedule.stdout).toContain(profile);
  });
});

/**
 * A real systemd-journald, started in a private mount namespace (its own /run and
 * /var/log/journal, so nothing of the machine's is touched): the syslog notifier's native
 * entries arrive with their priority and fields, and the command line's log lines, run with
 * stderr on a journal stream as systemd runs a service (JOURNAL_STREAM naming it), are filed at
 * the priority their `<N>` prefix says. Needs root and unshare(1), as CI has.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, REPO_ROOT, tempDir, writeRc } from '../helpers/cli.js';

let work: string;
let entries: Record<string, string>[] = [];
let notified: unknown;

const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0;

beforeAll(async () => {
  if (!canUnshare) return;
  work = await tempDir();
  await writeRc(work, `backupRoot: ./repo\nsources:\n  configs: { use: files, paths: [./data, ./missing] }\n`);
  await fsp.mkdir(path.join(work, 'data'));
  await fsp.writeFile(path.join(work, 'data', 'a.txt'), 'alpha\n');
  const notify = path.join(work, 'notify.mjs');
  const url = (p: string) => JSON.stringify(pathToFileURL(path.join(REPO_ROOT, p)).href);
  await fsp.writeFile(
    notify,
    `import syslog from ${url('plugins/syslog/dist/index.js')};
import { notifyThrough, sampleRunNotification } from ${url('packages/testkit/dist/index.js')};
const results = await notifyThrough([{ plugin: syslog({}) }], sampleRunNotification('failure'));
await import('node:fs').then((fs) => fs.writeFileSync(process.argv[2], JSON.stringify(results)));
`,
  );
  const script = `set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /var/log/journal && mount -t tmpfs tmpfs /var/log/journal
mkdir -p /run/systemd/journal /run/log/journal
/lib/systemd/systemd-journald >/dev/null 2>&1 &
JOURNALD=$!
i=0; until [ -S /run/systemd/journal/socket ] && [ -S /run/systemd/journal/stdout ]; do i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.05; done
"$NODE" "$WORK/notify.mjs" "$WORK/notified.json"
# As systemd runs a service: stderr on a journal stream, JOURNAL_STREAM naming it.
systemd-cat -t sutazai-cli sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$NODE" "$CLI" run --config "$WORK/.sutazai-backuprc"' || true
sleep 0.5
journalctl -D /run/log/journal -o json --no-pager
kill $JOURNALD
`;
  const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { env: { ...process.env, NODE: process.execPath, CLI: CLI_BIN, WORK: work, SUTAZAI_BACKUP_LOG_LEVEL: 'info' }, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`journald namespace failed (${r.status}): ${r.stderr}`);
  entries = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  notified = JSON.parse(await fsp.readFile(path.join(work, 'notified.json'), 'utf8'));
}, 150_000);

afterAll(async () => {
  if (work) await fsp.rm(work, { recursive: true, force: true });
});

describe.skipIf(!canUnshare)('journald (a real one, in a private mount namespace)', () => {
  it('the syslog notifier, target auto, writes a native entry: priority err for a failure, the facts as fields', () => {
    expect(notified).toEqual([expect.objectContaining({ channel: 'notify.test', status: 'sent' })]);
    const entry = entries.find((e) => e.SYSLOG_IDENTIFIER === 'sutazai-backup');
    expect(entry).toMatchObject({
      _TRANSPORT: 'journal',
      PRIORITY: '3',
      SYSLOG_FACILITY: '3',
      SUTAZAI_EVENT: 'failure',
      SUTAZAI_KIND: 'run',
      SUTAZAI_PROFILE: 'daily',
      SUTAZAI_HOST: 'test-host',
      MESSAGE: expect.stringMatching(/^backup FAILED: test-host \/ daily \| sources\.app-db failed at collect/),
    });
  });

  it('log lines of a run under systemd are filed at their level: the failure at err, the start at info, no prefix left in the text', () => {
    const lines = entries.filter((e) => e.SYSLOG_IDENTIFIER === 'sutazai-cli' && e._TRANSPORT === 'stdout');
    const logged = lines.filter((e) => e.MESSAGE.startsWith('{')).map((e) => ({ priority: e.PRIORITY, ...(JSON.parse(e.MESSAGE) as { level: string; msg: string }) }));
    expect(logged.find((l) => /^run started/.test(l.msg))).toMatchObject({ priority: '6', level: 'info' });
    expect(logged.find((l) => /^run failed/.test(l.msg))).toMatchObject({ priority: '3', level: 'error' });
    expect(logged.length).toBeGreaterThan(1);
    expect(logged.every((l) => l.priority === { error: '3', warn: '4', info: '6', debug: '7' }[l.level])).toBe(true);
    expect(lines.some((e) => /^<\d>/.test(e.MESSAGE))).toBe(false);
  });
});

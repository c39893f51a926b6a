#!/usr/bin/env node
// The postgres source against plain `pg_dump -Fc`: a pgbench database (scale 30 by default) is
// backed up with `sutazai-backup run` (dump, compression, sha256, the run's own verification with
// pg_restore --list, commit) and dumped with `pg_dump -Fc -f FILE`, interleaved in the same run,
// several times; prints the median wall times, their ratio and the peak RSS of each (of the
// whole process tree: the run's own pg_dump counts). Without pg_dump: a FAIL line and exit 1.
//
// Usage: node bench/postgres.mjs [--scale 30] [--reps 7] [--set option=value]... [--keep] [--data DIR]
//   --set passes an option to the postgres source (e.g. --set dumpCompression=0) to compare choices.
//   --data keeps the server's cluster and the pgbench database in DIR and reuses them on the next
//   run (generating scale 100 takes minutes on a loaded machine).
//   BENCH_PG_BIN: the PostgreSQL server programs (default /usr/lib/postgresql/15/bin).
// Exits 1 when the tool takes more than 1.25× pg_dump at scale < 100, 1.10× from 100 on (issue 17).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, promises as fsp } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { requireCompetitors } from './lib/competitors.mjs';
import { CLI, measure, median, mib } from './lib/measure.mjs';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '30' },
    reps: { type: 'string', default: '7' },
    set: { type: 'string', multiple: true, default: [] },
    keep: { type: 'boolean', default: false },
    data: { type: 'string' },
  },
});
// Issue 17: the fixed costs (Node's start, connections, verification, commit) weigh more on a
// short dump: at most 1.25× pg_dump at scale 30, 1.10× from scale 100 on.
const BIN = process.env.BENCH_PG_BIN ?? '/usr/lib/postgresql/15/bin';
requireCompetitors([{ name: 'pg_dump', command: path.join(BIN, 'pg_dump'), install: 'apt-get install postgresql-15, or BENCH_PG_BIN=<the server programs>' }]);
const scale = Number(args.scale);
const BUDGET = scale >= 100 ? 1.1 : 1.25;
const reps = Number(args.reps);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/**
 * A PostgreSQL server on loopback with password authentication (initdb refuses root: run it as
 * postgres); the cluster in `dir` is reused when an earlier run (with --data) left one there.
 */
async function startServer(dir) {
  const ids = {};
  if (process.getuid?.() === 0) {
    const [, , uid, gid] = run('getent', ['passwd', 'postgres']).trim().split(':');
    Object.assign(ids, { uid: Number(uid), gid: Number(gid) });
    await fsp.chown(dir, ids.uid, ids.gid);
  }
  const pwFile = path.join(dir, 'pw');
  const env = { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C', HOME: dir };
  let password;
  if (existsSync(path.join(dir, 'data', 'PG_VERSION'))) password = (await fsp.readFile(pwFile, 'utf8')).trim();
  else {
    password = randomBytes(12).toString('hex');
    await fsp.writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (ids.uid !== undefined) await fsp.chown(pwFile, ids.uid, ids.gid);
    run(path.join(BIN, 'initdb'), ['-D', path.join(dir, 'data'), '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync'], { ...ids, env, cwd: dir });
  }
  const port = await freePort();
  const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: dir, fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', shared_buffers: '256MB', logging_collector: 'off' };
  const server = spawn(path.join(BIN, 'postgres'), ['-D', path.join(dir, 'data'), '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])], {
    ...ids,
    env,
    cwd: dir,
    stdio: 'ignore',
  });
  const pgEnv = { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'postgres', PGPASSWORD: password };
  for (let i = 0; ; i++) {
    const r = spawnSync(path.join(BIN, 'pg_isready'), ['-q'], { env: { ...process.env, ...pgEnv } });
    if (r.status === 0) break;
    if (i > 300) throw new Error('the PostgreSQL server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    password,
    env: pgEnv,
    stop: () =>
      new Promise((resolve) => {
        server.once('exit', resolve);
        server.kill('SIGINT');
      }),
  };
}

const work = args.data ? path.resolve(args.data) : await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-bench-pg-'));
await fsp.mkdir(work, { recursive: true });
let server;
try {
  // The cluster's folder belongs to postgres; the repository must not lie in a folder another user owns.
  const cluster = path.join(work, 'cluster');
  await fsp.mkdir(cluster, { recursive: true });
  server = await startServer(cluster);
  const pgEnv = { ...process.env, ...server.env };
  const db = `pgbench_s${scale}`;
  const t0 = Date.now();
  const exists = run(path.join(BIN, 'psql'), ['-X', '-A', '-t', '-d', 'postgres', '-c', `SELECT 1 FROM pg_database WHERE datname = '${db}'`], { env: pgEnv }).trim() === '1';
  if (!exists) {
    run(path.join(BIN, 'psql'), ['-X', '-q', '-d', 'postgres', '-c', `CREATE DATABASE ${db}`], { env: pgEnv });
    run(path.join(BIN, 'pgbench'), ['-i', '-q', '-s', String(scale), db], { env: pgEnv });
  }
  const size = run(path.join(BIN, 'psql'), ['-X', '-A', '-t', '-d', db, '-c', `SELECT pg_size_pretty(pg_database_size('${db}'))`], { env: pgEnv }).trim();
  console.log(`pgbench -i -s ${scale}: ${size}${exists ? ', reused' : ''} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const rcDir = path.join(work, 'rc');
  await fsp.rm(path.join(work, 'repo'), { recursive: true, force: true });
  await fsp.mkdir(rcDir, { recursive: true });
  const extra = args.set.map((s) => {
    const [k, ...v] = s.split('=');
    return `    ${k}: ${v.join('=')}\n`;
  });
  await fsp.writeFile(
    path.join(rcDir, '.sutazai-backuprc'),
    `backupRoot: ${JSON.stringify(path.join(work, 'repo'))}\nsources:\n  pg:\n    use: postgres\n    url: postgres://postgres@127.0.0.1:${server.port}/${db}\n    password: \${BENCH_PG_PASSWORD}\n${extra.join('')}`,
  );
  const toolEnv = { BENCH_PG_PASSWORD: server.password, SUTAZAI_BACKUP_LOG_LEVEL: 'warn' };
  const dumpFile = path.join(work, 'plain.dump');
  const pgDump = path.join(BIN, 'pg_dump');

  const reportFile = path.join(work, 'run.json');
  async function tool() {
    const out = openSync(reportFile, 'w');
    let r;
    try {
      r = await measure(process.execPath, [CLI, 'run', '--json'], { cwd: rcDir, env: toolEnv, stdout: out });
    } finally {
      closeSync(out);
    }
    if (r.code !== 0) throw new Error(`sutazai-backup run failed: ${r.stderr}`);
    // The run's own stage times: collect + archive is the source's part (connections, catalog,
    // pg_dump, row counts, compression, sha256, the write); the rest is start-up and the run's
    // other stages (verification, commit).
    const { stages } = JSON.parse(await fsp.readFile(reportFile, 'utf8'));
    const stageMs = (name) => stages[name]?.durationMs ?? 0;
    const snapshots = path.join(work, 'repo', 'snapshots');
    const [id] = await fsp.readdir(snapshots);
    const manifest = JSON.parse(await fsp.readFile(path.join(snapshots, id, 'manifest.json'), 'utf8'));
    // The next run starts from the same state: an empty repository.
    await fsp.rm(snapshots, { recursive: true, force: true });
    return { ...r, bytes: manifest.artifacts.reduce((s, a) => s + a.bytes, 0), sourceMs: stageMs('collect') + stageMs('archive'), verifyMs: stageMs('verify') };
  }
  async function plain() {
    const r = await measure(pgDump, ['-Fc', '-f', dumpFile, db], { env: server.env });
    if (r.code !== 0) throw new Error(`pg_dump failed: ${r.stderr}`);
    const { size: bytes } = await fsp.stat(dumpFile);
    await fsp.rm(dumpFile);
    return { ...r, bytes };
  }

  console.log(`${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, node ${process.version}, ${run(pgDump, ['--version']).trim()}`);
  console.log(`load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`source options: ${args.set.length ? args.set.join(', ') : '(defaults)'}; ${reps} repetitions after one warm-up of each, interleaved`);
  // The command line's fixed cost (Node start-up, loading the rc file and the plugins), for reading the difference.
  async function startup() {
    const r = await measure(process.execPath, [CLI, 'config', 'validate'], { cwd: rcDir, env: toolEnv });
    if (r.code !== 0) throw new Error(`sutazai-backup config validate failed: ${r.stderr}`);
    return r;
  }
  await tool();
  await plain();
  const results = { tool: [], plain: [], startup: [] };
  for (let i = 0; i < reps; i++) {
    // Alternate which goes first, so neither always runs on a cache the other warmed.
    const order = i % 2 ? [['plain', plain], ['tool', tool]] : [['tool', tool], ['plain', plain]];
    for (const [name, fn] of order) results[name].push(await fn());
    results.startup.push(await startup());
    const last = (n) => results[n].at(-1);
    console.log(`  #${i + 1}: sutazai-backup ${(last('tool').wallMs / 1000).toFixed(2)} s, pg_dump -Fc ${(last('plain').wallMs / 1000).toFixed(2)} s`);
  }
  const summary = (list) => ({
    wall: median(list.map((r) => r.wallMs)),
    rss: Math.max(...list.map((r) => r.maxRssKb)),
    bytes: list.at(-1).bytes,
    source: median(list.map((r) => r.sourceMs ?? 0)),
    verify: median(list.map((r) => r.verifyMs ?? 0)),
  });
  const t = summary(results.tool);
  const p = summary(results.plain);
  const ratio = t.wall / p.wall;
  const s = summary(results.startup);
  console.log('');
  console.log(`sutazai-backup run: median ${(t.wall / 1000).toFixed(2)} s, peak RSS ${mib(t.rss)}, stored ${(t.bytes / 1024 ** 2).toFixed(1)} MiB`);
  console.log(`pg_dump -Fc:        median ${(p.wall / 1000).toFixed(2)} s, peak RSS ${mib(p.rss)}, stored ${(p.bytes / 1024 ** 2).toFixed(1)} MiB`);
  console.log(`of which CLI start-up (config validate): median ${(s.wall / 1000).toFixed(2)} s`);
  console.log(
    `of which the source's stages (collect + archive: connect, catalog, pg_dump, row counts, compression, sha256, write): median ${(t.source / 1000).toFixed(2)} s = ${(t.source / p.wall).toFixed(2)}x pg_dump; verify ${(t.verify / 1000).toFixed(2)} s`,
  );
  console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (a shared machine skews both sides; compare runs of one invocation only)`);
  console.log(`wall-time ratio: ${ratio.toFixed(3)} (budget ${BUDGET.toFixed(2)}): ${ratio <= BUDGET ? 'within budget' : 'OVER BUDGET'}`);
  process.exitCode = ratio <= BUDGET ? 0 : 1;
} finally {
  await server?.stop();
  if (!args.keep && !args.data) await fsp.rm(work, { recursive: true, force: true });
  else if (existsSync(work)) console.log(`kept ${work}`);
}

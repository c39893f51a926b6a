import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { BackupError, defineSource, expandHome, extractTree, isBackupError, quoteReply, runChild, startChild, z, type Logger, type SecretRegistry } from '@sutazai/backup-core';

export const prometheusOptions = z
  .object({
    /** Prometheus's address; its admin API must be on (`--web.enable-admin-api`). */
    url: z.string().url().default('http://127.0.0.1:9090'),
    /** Prometheus's `--storage.tsdb.path` as this host sees it: snapshots are written there, and read from there. */
    dataDir: z.string().min(1),
    /** Leave out the head block (the last ~2 h not yet written to disk). */
    skipHead: z.boolean().default(false),
    /** For a Prometheus behind authentication: a bearer token, or a user and password (basic). */
    bearerToken: z.string().min(1).optional(),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** Seconds to wait for Prometheus to write the snapshot. */
    timeout: z.number().positive().default(600),
  })
  .strict()
  .refine((o) => (o.username === undefined) === (o.password === undefined), { message: 'username and password go together', path: ['password'] });

export type PrometheusOptions = z.input<typeof prometheusOptions>;
type Options = z.output<typeof prometheusOptions>;

/** What the manifest records of each block of the snapshot (from its meta.json). */
export interface BlockRecord {
  ulid: string;
  minTime: number;
  maxTime: number;
  numSamples: number;
  numSeries: number;
}

/** The blocks of a TSDB folder: every subfolder with a meta.json. */
async function readBlocks(dir: string): Promise<BlockRecord[]> {
  const blocks: BlockRecord[] = [];
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    let meta: { ulid?: string; minTime?: number; maxTime?: number; stats?: { numSamples?: number; numSeries?: number } };
    try {
      meta = JSON.parse(await fsp.readFile(path.join(dir, entry.name, 'meta.json'), 'utf8'));
    } catch {
      continue;
    }
    blocks.push({
      ulid: meta.ulid ?? entry.name,
      minTime: meta.minTime ?? 0,
      maxTime: meta.maxTime ?? 0,
      numSamples: meta.stats?.numSamples ?? 0,
      numSeries: meta.stats?.numSeries ?? 0,
    });
  }
  return blocks.sort((a, b) => a.ulid.localeCompare(b.ulid));
}

/** Asks Prometheus for a snapshot; resolves with its name (a folder under `<dataDir>/snapshots`). */
async function takeSnapshot(options: Options, key: string, secrets: SecretRegistry, signal: AbortSignal): Promise<string> {
  const headers: Record<string, string> = {};
  if (options.bearerToken) headers.authorization = `Bearer ${options.bearerToken}`;
  else if (options.username) headers.authorization = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`;
  const url = new URL('api/v1/admin/tsdb/snapshot', options.url.endsWith('/') ? options.url : `${options.url}/`);
  url.searchParams.set('skip_head', String(options.skipHead));
  const where = `${key}: the snapshot API of Prometheus at ${options.url}`;
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers, signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeout * 1000)]) });
  } catch (err) {
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${options.timeout} s (timeout)` : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new BackupError('E_SOURCE', secrets.redact(`${where}: cannot reach it (${why})`), { cause: err });
  }
  const text = await response.text();
  let body: { status?: string; error?: string; data?: { name?: string } } = {};
  try {
    body = JSON.parse(text);
  } catch {
    // Not Prometheus's JSON: said below with the status.
  }
  if (body.error === 'admin APIs disabled') {
    throw new BackupError('E_SOURCE', `${where}: the admin API is off: start Prometheus with --web.enable-admin-api`);
  }
  if (response.status === 401 || response.status === 403) {
    throw new BackupError('E_AUTH', `${where}: refused (HTTP ${response.status}): check bearerToken or username/password`);
  }
  const name = body.data?.name;
  if (!response.ok || body.status !== 'success' || typeof name !== 'string' || !/^[\w.-]+$/.test(name)) {
    const known = secrets.fork();
    known.addHeaders(headers);
    throw new BackupError('E_SOURCE', known.redact(`${where}: failed (HTTP ${response.status}): ${quoteReply(body.error ?? text, known)}`));
  }
  return name;
}

/** Checks restored blocks against the manifest: meta.json, index, chunks; and promtool's reading, if it is installed. */
async function checkBlocks(dir: string, expected: BlockRecord[], add: (name: string, ok: boolean, detail?: string) => void, logger: Logger, secrets: SecretRegistry): Promise<void> {
  const restored = new Map((await readBlocks(dir)).map((b) => [b.ulid, b]));
  for (const block of expected) {
    const got = restored.get(block.ulid);
    const problems: string[] = [];
    if (!got) problems.push('missing (no meta.json)');
    else {
      for (const field of ['minTime', 'maxTime', 'numSamples', 'numSeries'] as const) {
        if (got[field] !== block[field]) problems.push(`${field} ${got[field]}, the manifest says ${block[field]}`);
      }
      const index = await fsp.stat(path.join(dir, block.ulid, 'index')).catch(() => undefined);
      if (!index?.isFile()) problems.push('no index');
      const chunks = await fsp.readdir(path.join(dir, block.ulid, 'chunks')).catch(() => []);
      if (block.numSamples > 0 && chunks.length === 0) problems.push('no chunks');
    }
    add(`block ${block.ulid}`, problems.length === 0, problems.length ? `block ${block.ulid}: ${problems.join('; ')}` : `${block.numSeries} series, ${block.numSamples} samples`);
  }
  try {
    const listing = await runChild({ path: 'promtool', name: 'promtool' }, ['tsdb', 'list', dir], {
      env: { LC_ALL: 'C' },
      what: 'promtool tsdb list',
      code: 'E_RESTORE_TEST',
      secrets,
      logger,
    });
    const missing = expected.filter((b) => !listing.includes(b.ulid));
    add('promtool tsdb list', missing.length === 0, missing.length ? `promtool does not list ${missing.map((b) => b.ulid).join(', ')}` : `${expected.length} blocks`);
  } catch (err) {
    if (isBackupError(err) && err.details.spawnError === 'ENOENT') logger.info('promtool is not installed here: blocks checked without it');
    else add('promtool tsdb list', false, (err as Error).message);
  }
}

/**
 * `use: prometheus` — a consistent copy of Prometheus's TSDB: the admin API writes a snapshot
 * (hard links to the blocks, plus the head block unless `skipHead`), which is streamed as a tar
 * of its blocks and removed afterwards, whatever happened. The restore test extracts the blocks
 * and checks each against the manifest (time range, series, samples, index, chunks), and with
 * promtool when it is installed.
 */
export default defineSource({
  name: 'prometheus',
  options: prometheusOptions,
  reads(options, { configDir }) {
    // What it archives: the snapshots Prometheus writes there.
    return [{ key: 'dataDir', paths: [path.join(path.resolve(configDir, expandHome(options.dataDir)), 'snapshots')] }];
  },
  async collect(ctx, options) {
    if (options.bearerToken) ctx.secrets.add(options.bearerToken);
    if (options.password) ctx.secrets.add(options.password);
    const dataDir = path.resolve(ctx.configDir, expandHome(options.dataDir));
    return [
      {
        type: 'file' as const,
        name: ctx.instance,
        ext: 'tar',
        filename: 'prometheus-snapshot.tar',
        meta: { url: options.url, dataDir },
        async open({ signal, logger }) {
          const name = await takeSnapshot(options, ctx.key, ctx.secrets, signal);
          const dir = path.join(dataDir, 'snapshots', name);
          const remove = () =>
            fsp.rm(dir, { recursive: true, force: true }).catch((err: Error) => logger.warn(`${ctx.key}: could not remove the snapshot ${dir}: ${err.message}: remove it by hand`));
          let blocks: BlockRecord[];
          try {
            blocks = await readBlocks(dir);
          } catch (err) {
            await remove();
            throw new BackupError(
              'E_SOURCE',
              `${ctx.key}: Prometheus wrote snapshot ${name}, but ${dir} cannot be read here (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): dataDir must be Prometheus's --storage.tsdb.path as this host sees it, readable by this user`,
              { plugin: ctx.key },
            );
          }
          logger.debug(`snapshot ${name}: ${blocks.length} block(s)`);
          // The blocks at the top of the tar: it extracts into a folder Prometheus can start on.
          const tar = startChild({ path: 'tar', name: 'tar' }, ['-C', dir, '-cf', '-', '.'], {
            env: { LC_ALL: 'C' },
            what: `${ctx.key}: tar of snapshot ${name}`,
            code: 'E_SOURCE',
            secrets: ctx.secrets,
            logger,
            signal,
          });
          const stream = tar.stdout!;
          const done = Promise.all([tar.exited, finished(stream)])
            .then(() => ({ snapshot: name, blocks }))
            .finally(remove);
          return { stream, done };
        },
      },
    ];
  },
  async restoreTest(ctx) {
    const expected = (ctx.artifact.meta as { blocks?: BlockRecord[] }).blocks;
    if (!expected) return;
    const dir = path.join(await ctx.tempDir(), 'blocks');
    await fsp.mkdir(dir, { recursive: true });
    await extractTree(createReadStream(ctx.restoredPath), dir, { label: `${ctx.manifest.id}/${ctx.artifact.file}` });
    await checkBlocks(dir, expected, ctx.addCheck, ctx.logger, ctx.plugin.secrets);
  },
});

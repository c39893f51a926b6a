/**
 * The ollama source through the real command line, on a models folder laid out as Ollama lays
 * it out (manifests/<host>/<namespace>/<model>/<tag> naming blobs/sha256-<hex>). No Ollama server
 * runs here (it is not in Debian): the folder is made by the test, with blobs whose names are
 * their real sha256, two models sharing one blob, and a model from another registry.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceStreamChecks } from '@sutazai/backup-testkit';
import { committedSnapshots, runCli, sourceProject, tempDir } from '../../../test/helpers/cli.js';
import { manifestPath } from '../src/index.js';

interface Blob {
  digest: string;
  data: Buffer;
}

function blob(data: Buffer): Blob {
  return { digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, data };
}

async function addModel(models: string, name: string, parts: Blob[]): Promise<void> {
  for (const b of parts) {
    await fsp.mkdir(path.join(models, 'blobs'), { recursive: true });
    await fsp.writeFile(path.join(models, 'blobs', b.digest.replace(':', '-')), b.data);
  }
  const [config, ...layers] = parts;
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: config!.digest, size: config!.data.length },
    layers: layers.map((l, i) => ({ mediaType: i === 0 ? 'application/vnd.ollama.image.model' : 'application/vnd.ollama.image.license', digest: l.digest, size: l.data.length })),
  };
  const file = path.join(models, manifestPath(name));
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, JSON.stringify(manifest));
}

let work: string;
let models: string;
const license = blob(Buffer.from('MIT License\n'.repeat(50)));
const tinyConfig = blob(Buffer.from('{"model_format":"gguf","model_family":"tiny"}'));
const blobFile = (b: Blob) => `blobs/${b.digest.replace(':', '-')}`;
const tinyWeights = blob(randomBytes(3 * 1024 * 1024));
const otherWeights = blob(randomBytes(2 * 1024 * 1024));

beforeAll(async () => {
  work = await tempDir('sutazai-ollama-');
  models = path.join(work, 'ollama', 'models');
  await addModel(models, 'tiny:latest', [tinyConfig, tinyWeights, license]);
  await addModel(models, 'other:7b', [blob(Buffer.from('{"model_format":"gguf","model_family":"other"}')), otherWeights, license]);
  await addModel(models, 'registry.example.com/team/private:v1', [blob(Buffer.from('{"model_family":"private"}')), blob(randomBytes(4096))]);
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

function project(name: string, source: string): Promise<string> {
  return sourceProject(path.join(work, name), 'models', 'ollama', source);
}

/** Every file under `dir`, relative, with its content's sha256. */
async function listing(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await fsp.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, file)] = createHash('sha256').update(await fsp.readFile(file)).digest('hex');
  }
  return out;
}

describe('ollama source', () => {
  it('backs up every model, restores the folder as it was, and the restore test checks each blob', async () => {
    const dir = await project('all', `modelsDir: ${JSON.stringify(models)}`);
    const run = await runCli(['run', '--json'], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);

    const out = path.join(dir, 'out');
    const restore = await runCli(['restore', 'latest', '--to', out], { cwd: dir });
    expect(restore.code, restore.stderr).toBe(0);
    expect(await listing(path.join(out, 'models', models))).toEqual(await listing(models));

    const test = await runCli(['restore-test', '--json'], { cwd: dir });
    expect(test.code, test.stdout + test.stderr).toBe(0);
    const checks = test.json().artifacts[0].checks as { name: string; ok: boolean; detail?: string }[];
    expect(checks.filter((c) => c.name.startsWith('model ')).map((c) => c.name).sort()).toEqual([
      'model other:7b',
      'model registry.example.com/team/private:v1',
      'model tiny:latest',
    ]);
    expect(checks.find((c) => c.name === 'model tiny:latest')).toMatchObject({ ok: true, detail: expect.stringMatching(/^3 blobs, \d+ bytes, sha256 ok$/) });
  });

  it('backs up only the models named, with the blobs they use', async () => {
    const dir = await project('one', `modelsDir: ${JSON.stringify(models)}\nmodels: [tiny]`);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    const out = path.join(dir, 'out');
    expect((await runCli(['restore', 'latest', '--to', out], { cwd: dir })).code).toBe(0);
    const files = Object.keys(await listing(path.join(out, 'models', models))).sort();
    expect(files).toEqual([manifestPath('tiny'), ...[tinyConfig, tinyWeights, license].map(blobFile)].sort());
  });

  it('fails, naming the model, when a named model is not there or one of its blobs is missing; nothing is committed', async () => {
    const absent = await project('absent', `modelsDir: ${JSON.stringify(models)}\nmodels: [tiny, llama3:70b]`);
    const r1 = await runCli(['run'], { cwd: absent });
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/sources\.models: model \\?"llama3:70b\\?" is not in .* \(it has: other:7b, registry\.example\.com\/team\/private:v1, tiny:latest\)/);
    expect(await committedSnapshots(absent)).toEqual([]);

    const broken = path.join(work, 'broken-models');
    await addModel(broken, 'half:latest', [blob(Buffer.from('{}')), blob(randomBytes(1000))]);
    const weights = (await fsp.readdir(path.join(broken, 'blobs'))).find((f) => f !== blob(Buffer.from('{}')).digest.replace(':', '-'))!;
    await fsp.rm(path.join(broken, 'blobs', weights));
    const dir = await project('missing-blob', `modelsDir: ${JSON.stringify(broken)}`);
    const r2 = await runCli(['run'], { cwd: dir });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain(`model half:latest: its blob blobs/${weights} is missing`);

    const nowhere = await project('nowhere', `modelsDir: ${JSON.stringify(path.join(work, 'no-such-folder'))}`);
    const r3 = await runCli(['run'], { cwd: nowhere });
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/is not an Ollama models folder \(no manifests\/ folder in it\): set modelsDir/);
  });

  it('the restore test names a blob whose content does not match its sha256 (a model damaged before the backup)', async () => {
    const damaged = path.join(work, 'damaged-models');
    const good = blob(randomBytes(100_000));
    await addModel(damaged, 'rotten:latest', [blob(Buffer.from('{}')), good]);
    // Bit rot: same size, one byte different, so only a hash finds it.
    const file = path.join(damaged, 'blobs', good.digest.replace(':', '-'));
    const bytes = await fsp.readFile(file);
    bytes[5000]! ^= 0x01;
    await fsp.writeFile(file, bytes);
    const dir = await project('rotten', `modelsDir: ${JSON.stringify(damaged)}`);
    expect((await runCli(['run'], { cwd: dir })).code).toBe(0);
    const test = await runCli(['restore-test'], { cwd: dir });
    expect(test.code).toBe(1);
    expect(test.stdout).toContain(`FAILED model rotten:latest: model rotten:latest: blobs/${good.digest.replace(':', '-')}: its content does not match the sha256 in its name`);
  });

  it('refuses a model name that is not one, when the run starts', async () => {
    const dir = await project('bad-name', `modelsDir: ${JSON.stringify(models)}\nmodels: ["../../etc:passwd"]`);
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a model name/);
  });
});

describe('ollama source, a model whose weights are 0 B to 1 MiB (testkit)', () => {
  const checks = sourceStreamChecks({
    use: 'ollama',
    runs: 13,
    fixture: async ({ data, dir }) => {
      const modelsDir = path.join(dir, 'models');
      const weights = blob(data);
      await addModel(modelsDir, 'tiny:latest', [tinyConfig, weights, license]);
      // A tree restores with its absolute paths under DIR/<source>/.
      return { options: { modelsDir }, expected: { [path.join(modelsDir.slice(1), blobFile(weights))]: data } };
    },
  });
  // Many backups beside a busy CPU: more than the default time on a loaded machine.
  for (const check of checks) it(check.name, check.run, 600_000);
});

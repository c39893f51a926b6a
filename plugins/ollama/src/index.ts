import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BackupError, defineSource, expandHome, joinInside, z } from '@sutazai/backup-core';

export const ollamaOptions = z
  .object({
    /** Ollama's models folder ($OLLAMA_MODELS): `~/.ollama/models`, or `/usr/share/ollama/.ollama/models` for the Linux service. */
    modelsDir: z.string().min(1).default('~/.ollama/models'),
    /** The models to back up (`llama3:8b`, `nomic-embed-text`, `registry.example.com/team/model:tag`); default: all. */
    models: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

export type OllamaOptions = z.input<typeof ollamaOptions>;

const DEFAULT_HOST = 'registry.ollama.ai';
const DEFAULT_NAMESPACE = 'library';
const DEFAULT_TAG = 'latest';

/** A model as the manifest names it, and what it consists of. */
export interface ModelRecord {
  /** `llama3:8b`, or `host/namespace/name:tag` outside the default registry and namespace. */
  name: string;
  /** The manifest, relative to the models folder: `manifests/registry.ollama.ai/library/llama3/8b`. */
  manifest: string;
  /** Its config and layers: `sha256:<hex>` and size. */
  blobs: { digest: string; size: number }[];
}

/** `llama3` → registry.ollama.ai/library/llama3/latest; `team/m:v1` → registry.ollama.ai/team/m/v1. */
export function manifestPath(model: string): string {
  const colon = model.lastIndexOf(':');
  const slash = model.lastIndexOf('/');
  const [base, tag] = colon > slash ? [model.slice(0, colon), model.slice(colon + 1)] : [model, DEFAULT_TAG];
  const parts = base.split('/');
  const full = parts.length === 1 ? [DEFAULT_HOST, DEFAULT_NAMESPACE, ...parts] : parts.length === 2 ? [DEFAULT_HOST, ...parts] : parts;
  if (full.length !== 3 || [...full, tag].some((p) => !p || p === '.' || p === '..' || p.includes('\\'))) {
    throw new Error(`"${model}" is not a model name (name, name:tag, namespace/name:tag or host/namespace/name:tag)`);
  }
  return path.posix.join('manifests', ...full, tag);
}

/** The short name Ollama shows for a manifest path (`llama3:8b`). */
function modelName(manifest: string): string {
  const [, host, namespace, name, tag] = manifest.split('/');
  if (host === DEFAULT_HOST && namespace === DEFAULT_NAMESPACE) return `${name}:${tag}`;
  if (host === DEFAULT_HOST) return `${namespace}/${name}:${tag}`;
  return `${host}/${namespace}/${name}:${tag}`;
}

/** `sha256:<hex>` → `blobs/sha256-<hex>` (the file Ollama keeps it in). */
export function blobPath(digest: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`"${digest}" is not a sha256 digest`);
  return path.posix.join('blobs', digest.replace(':', '-'));
}

/** Every manifest under `manifests/` (host/namespace/name/tag), relative to the models folder. */
async function allManifests(modelsDir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(rel: string, depth: number): Promise<void> {
    const entries = await fsp.readdir(path.join(modelsDir, rel), { withFileTypes: true });
    for (const e of entries) {
      const child = path.posix.join(rel, e.name);
      if (depth === 4 && e.isFile()) found.push(child);
      else if (depth < 4 && e.isDirectory()) await walk(child, depth + 1);
    }
  }
  await walk('manifests', 1);
  return found.sort();
}

/** Reads a manifest: its config and layers. */
async function readManifest(modelsDir: string, manifest: string): Promise<ModelRecord> {
  const text = await fsp.readFile(path.join(modelsDir, manifest), 'utf8');
  const json = JSON.parse(text) as { config?: { digest?: unknown; size?: unknown }; layers?: { digest?: unknown; size?: unknown }[] };
  const parts = [...(json.config ? [json.config] : []), ...(json.layers ?? [])];
  if (parts.length === 0) throw new Error('it lists no config and no layers');
  const blobs = parts.map((p) => {
    if (typeof p.digest !== 'string' || typeof p.size !== 'number') throw new Error('a layer without a digest or a size');
    blobPath(p.digest);
    return { digest: p.digest, size: p.size };
  });
  return { name: modelName(manifest), manifest, blobs };
}

/** sha256 of a file, as `sha256:<hex>`. */
async function digestOf(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), hash);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * `use: ollama` — Ollama's models: each model's manifest and the blobs it names (weights,
 * template, license, ...), archived as one tree; a blob shared by several models is stored once.
 * Incompressible weights are stored without compressing them. The restore test checks every
 * restored blob against the sha256 in its name and the size in its manifest.
 */
function modelsFolder(options: { modelsDir: string }, configDir: string): string {
  return path.resolve(configDir, expandHome(options.modelsDir));
}

export default defineSource({
  name: 'ollama',
  options: ollamaOptions,
  reads(options, { configDir }) {
    // The model manifests and blobs it archives, file by file.
    const modelsDir = modelsFolder(options, configDir);
    return [{ key: 'modelsDir', paths: [path.join(modelsDir, 'manifests'), path.join(modelsDir, 'blobs')] }];
  },
  async collect(ctx, options) {
    const modelsDir = modelsFolder(options, ctx.configDir);
    const fail = (message: string): never => {
      throw new BackupError('E_SOURCE', `${ctx.key}: ${message}`, { plugin: ctx.key, details: { modelsDir } });
    };
    const available = await allManifests(modelsDir).catch((err: NodeJS.ErrnoException) =>
      fail(`${modelsDir} is not an Ollama models folder (${err.code === 'ENOENT' ? 'no manifests/ folder in it' : err.message}): set modelsDir ($OLLAMA_MODELS)`),
    );
    let wanted: string[];
    if (options.models) {
      wanted = [];
      for (const model of options.models) {
        let manifest: string;
        try {
          manifest = manifestPath(model);
        } catch (err) {
          return fail((err as Error).message);
        }
        if (!available.includes(manifest)) {
          fail(`model "${model}" is not in ${modelsDir} (it has: ${available.map(modelName).sort().join(', ') || 'no models'})`);
        }
        wanted.push(manifest);
      }
    } else {
      wanted = available;
      if (wanted.length === 0) fail(`${modelsDir} holds no models`);
    }

    const models: ModelRecord[] = [];
    const blobs = new Map<string, number>();
    for (const manifest of wanted) {
      let model: ModelRecord;
      try {
        model = await readManifest(modelsDir, manifest);
      } catch (err) {
        return fail(`the manifest ${path.join(modelsDir, manifest)} cannot be read: ${(err as Error).message}`);
      }
      for (const blob of model.blobs) {
        const file = path.join(modelsDir, blobPath(blob.digest));
        const st = await fsp.stat(file).catch(() => undefined);
        if (!st?.isFile()) fail(`model ${model.name}: its blob ${blobPath(blob.digest)} is missing from ${modelsDir} (a pull in progress, or a damaged folder: \`ollama pull ${model.name}\`)`);
        else if (st.size !== blob.size) fail(`model ${model.name}: its blob ${blobPath(blob.digest)} has ${st.size} bytes, its manifest says ${blob.size}`);
        blobs.set(blob.digest, blob.size);
      }
      models.push(model);
    }
    const bytes = [...blobs.values()].reduce((a, b) => a + b, 0);
    ctx.logger.debug(`${models.length} model(s), ${blobs.size} blob(s), ${bytes} bytes`);
    return [
      {
        type: 'tree' as const,
        name: ctx.instance,
        paths: [...wanted.map((m) => path.join(modelsDir, m)), ...[...blobs.keys()].map((d) => path.join(modelsDir, blobPath(d)))],
        meta: { modelsDir, models, blobs: blobs.size, bytes },
      },
    ];
  },
  async restoreTest(ctx) {
    const meta = ctx.artifact.meta as { modelsDir?: string; models?: ModelRecord[] };
    if (!meta.modelsDir || !meta.models) return;
    // The tree is restored with its absolute paths under the source's folder; the manifest's
    // paths never lead out of it.
    const label = `${ctx.manifest.id}/${ctx.artifact.file}`;
    const root = joinInside(ctx.restoredPath, meta.modelsDir, label);
    const checked = new Map<string, string | undefined>();
    for (const model of meta.models) {
      const problems: string[] = [];
      try {
        joinInside(root, model.manifest, label);
        const restored = await readManifest(root, model.manifest);
        if (JSON.stringify(restored.blobs) !== JSON.stringify(model.blobs)) problems.push('its manifest lists other blobs than at backup time');
      } catch (err) {
        problems.push(`its manifest ${model.manifest}: ${(err as Error).message}`);
      }
      for (const blob of model.blobs) {
        const rel = blobPath(blob.digest);
        if (!checked.has(blob.digest)) {
          const file = path.join(root, rel);
          const st = await fsp.stat(file).catch(() => undefined);
          let problem: string | undefined;
          if (!st) problem = `${rel} is missing`;
          else if (st.size !== blob.size) problem = `${rel} has ${st.size} bytes, its manifest says ${blob.size}`;
          else if ((await digestOf(file)) !== blob.digest) problem = `${rel}: its content does not match the sha256 in its name`;
          checked.set(blob.digest, problem);
        }
        const problem = checked.get(blob.digest);
        if (problem) problems.push(problem);
      }
      const size = model.blobs.reduce((a, b) => a + b.size, 0);
      ctx.addCheck(`model ${model.name}`, problems.length === 0, problems.length ? `model ${model.name}: ${problems.join('; ')}` : `${model.blobs.length} blobs, ${size} bytes, sha256 ok`);
    }
  },
});

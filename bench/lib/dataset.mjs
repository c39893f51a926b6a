// Generates a mixed dataset like the platform's: compressible service logs (a few hundred medium
// files), incompressible model-like blobs (a few large files) and thousands of small config files
// in nested folders, plus a few symlinks. Reused when a dataset of the same size and layout exists.
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';

const LAYOUT_VERSION = 1;
const MB = 1000 * 1000;

/** A small deterministic PRNG (mulberry32), so two datasets of one size compress alike. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'DEBUG', 'WARN', 'ERROR'];
const SERVICES = ['api', 'inference', 'scheduler', 'embedder', 'gateway', 'worker', 'auth', 'vector-db'];
const PATHS = ['/v1/chat/completions', '/v1/embeddings', '/v1/models', '/health', '/api/jobs', '/api/agents/run', '/metrics'];
const MESSAGES = [
  'request completed',
  'cache miss, loading shard',
  'token budget exceeded, truncating context',
  'upstream timeout, retrying',
  'batch flushed to queue',
  'model warmup finished',
  'connection reset by peer',
];

function logText(rand, bytes, startMs) {
  const lines = [];
  let size = 0;
  let t = startMs;
  while (size < bytes) {
    t += Math.floor(rand() * 2000);
    const pick = (list) => list[Math.floor(rand() * list.length)];
    const line =
      `${new Date(t).toISOString()} ${pick(LEVELS)} [${pick(SERVICES)}-${Math.floor(rand() * 8)}] ${pick(MESSAGES)} ` +
      `req=${Math.floor(rand() * 0xffffffff).toString(16).padStart(8, '0')} path=${pick(PATHS)} status=${rand() < 0.95 ? 200 : 503} ` +
      `latency_ms=${Math.floor(rand() * rand() * 4000)} tokens=${Math.floor(rand() * 8192)} user=u${Math.floor(rand() * 5000)}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

function configText(rand, index) {
  const keys = Math.floor(4 + rand() * 60);
  const lines = [`# service config ${index}`, `name: svc-${index}`, `replicas: ${1 + Math.floor(rand() * 6)}`];
  for (let k = 0; k < keys; k++) {
    lines.push(`setting_${k}_${Math.floor(rand() * 1000)}: ${rand() < 0.5 ? Math.floor(rand() * 100000) : `"value-${Math.floor(rand() * 1e9).toString(36)}"`}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * The plan for `totalMB` (decimal MB): ~40% logs, ~56% blobs, the rest small configs.
 * Returns { dir, files, bytes } once `dir` holds it.
 */
export async function ensureDataset(dir, totalMB) {
  const marker = path.join(dir, '.dataset.json');
  const spec = { version: LAYOUT_VERSION, totalMB };
  if (existsSync(marker)) {
    const found = JSON.parse(await fsp.readFile(marker, 'utf8'));
    if (found.version === spec.version && found.totalMB === spec.totalMB) return found;
  }
  await fsp.rm(dir, { recursive: true, force: true });
  const data = path.join(dir, 'data');
  const rand = prng(7);
  let files = 0;
  let bytes = 0;

  const logBytes = Math.round(totalMB * MB * 0.4);
  const logFiles = Math.max(10, Math.round(logBytes / (1.2 * MB)));
  for (let i = 0; i < logFiles; i++) {
    const service = SERVICES[i % SERVICES.length];
    const folder = path.join(data, 'logs', service);
    await fsp.mkdir(folder, { recursive: true });
    // Sizes vary between 0.2x and 1.8x the mean.
    const size = Math.round((logBytes / logFiles) * (0.2 + 1.6 * rand()));
    await fsp.writeFile(path.join(folder, `${service}-${String(i).padStart(4, '0')}.log`), logText(rand, size, Date.UTC(2026, 10, 1) + i * 3600_000));
    files++;
    bytes += size;
  }

  const blobBytes = Math.round(totalMB * MB * 0.56);
  const blobFiles = Math.max(1, Math.round(blobBytes / (80 * MB)));
  await fsp.mkdir(path.join(data, 'models'), { recursive: true });
  for (let i = 0; i < blobFiles; i++) {
    const size = Math.round(blobBytes / blobFiles);
    const handle = await fsp.open(path.join(data, 'models', `shard-${String(i).padStart(3, '0')}.safetensors`), 'w');
    for (let written = 0; written < size; ) {
      const n = Math.min(16 * 1024 * 1024, size - written);
      await handle.write(randomBytes(n));
      written += n;
    }
    await handle.close();
    files++;
    bytes += size;
  }

  const configBudget = totalMB * MB - logBytes - blobBytes;
  const configFiles = Math.max(50, Math.min(6000, Math.round(configBudget / 4000)));
  for (let i = 0; i < configFiles; i++) {
    const folder = path.join(data, 'config', `team-${i % 12}`, `app-${Math.floor(i / 12) % 40}`);
    if (i < 480) await fsp.mkdir(folder, { recursive: true });
    const text = configText(rand, i);
    await fsp.writeFile(path.join(folder, `svc-${i}.yaml`), text);
    files++;
    bytes += text.length;
  }
  await fsp.symlink('team-0/app-0/svc-0.yaml', path.join(data, 'config', 'current.yaml'));
  await fsp.symlink('../models/shard-000.safetensors', path.join(data, 'config', 'model.safetensors'));

  const result = { ...spec, dir: data, files, bytes };
  await fsp.writeFile(marker, JSON.stringify(result));
  return result;
}

import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export { runDestinationConformance, type ConformanceCheck, type ConformanceOptions } from './conformance.js';
export { connectionReset, FaultInjector, type DestinationOperation } from './faults.js';
export {
  programPrinting,
  sourceStreamChecks,
  startCpuLoad,
  STREAM_CHECK_SIZES,
  STREAM_CHECK_SOURCE,
  type SourceStreamCheckOptions,
  type StreamFixture,
  type StreamFixtureContext,
} from './source-streams.js';
export { notifyThrough, sampleRunNotification, sampleRunReport, type ChannelUnderTest } from './notify.js';

/** A fresh private temporary folder; remove it with `fs.rm(dir, { recursive: true })`. */
export async function makeTempDir(prefix = 'sutazai-test-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** An inline file tree: a string or Buffer is a file; `{ symlink }` a link; `{ mode, content }` a file with a mode; an object a folder. */
export type TreeSpec = { [name: string]: string | Buffer | { symlink: string } | { content: string | Buffer; mode?: number } | TreeSpec };

/** Writes an inline file tree under `dir` (fixtures built from code, as changesets does). */
export async function writeTree(dir: string, spec: TreeSpec): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  for (const [name, value] of Object.entries(spec)) {
    const p = path.join(dir, name);
    if (typeof value === 'string' || Buffer.isBuffer(value)) await fsp.writeFile(p, value);
    else if ('symlink' in value && typeof value.symlink === 'string') await fsp.symlink(value.symlink, p);
    else if ('content' in value && (typeof value.content === 'string' || Buffer.isBuffer(value.content))) {
      await fsp.writeFile(p, value.content);
      if (typeof value.mode === 'number') await fsp.chmod(p, value.mode);
    } else await writeTree(p, value as TreeSpec);
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface TreeItem {
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits. */
  mode: number;
  sha256?: string;
  size?: number;
  target?: string;
}

/** Every entry under `dir` by relative path: type, mode, and content hash or link target. */
export async function describeTree(dir: string): Promise<Record<string, TreeItem>> {
  const out: Record<string, TreeItem> = {};
  const walk = async (current: string) => {
    for (const name of (await fsp.readdir(current)).sort()) {
      const p = path.join(current, name);
      const rel = path.relative(dir, p);
      const st = await fsp.lstat(p);
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink()) out[rel] = { type: 'symlink', mode, target: await fsp.readlink(p) };
      else if (st.isDirectory()) {
        out[rel] = { type: 'directory', mode };
        await walk(p);
      } else out[rel] = { type: 'file', mode, size: st.size, sha256: await sha256File(p) };
    }
  };
  await walk(dir);
  return out;
}

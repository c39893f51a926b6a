import { mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archiver } from '../../src/restic/archiver.js';
import { RabinChunker } from '../../src/restic/rabin.js';
import { decodeTree, encodeTree } from '../../src/restic/tree.js';
import { makeFixture } from './fixture.js';
import { MemoryStore } from './memory-store.js';
import { latestSnapshot, restic, resticBlob } from './restic-cli.js';

/** The tree ids along `names` from a root tree, read through `load`. */
async function treesAlong(load: (id: string) => Promise<Buffer>, root: string, names: string[]): Promise<string[]> {
  const ids = [root];
  for (const name of names) {
    const node = decodeTree(await load(ids.at(-1)!), ids.at(-1)!).find((n) => n.name === name);
    if (!node?.subtree) throw new Error(`no folder ${name}`);
    ids.push(node.subtree);
  }
  return ids;
}

// Trees in a zone with a half-hour offset, to check times are written as restic writes them.
const ZONE = 'Asia/Kolkata';

describe('trees are byte for byte the trees restic writes', () => {
  let dir: string;
  let repo: string;
  let theirs: string[];
  let names: string[];
  const previousZone = process.env.TZ;

  beforeAll(async () => {
    process.env.TZ = ZONE;
    dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'restic-trees-')));
    repo = path.join(dir, 'repo');
    await makeFixture(path.join(dir, 'src'));
    await restic(repo, ['init', '--repository-version', '2']);
    await restic(repo, ['backup', path.join(dir, 'src')], { TZ: ZONE });
    const snapshot = await latestSnapshot(repo);
    names = path.join(dir, 'src').split('/').slice(1);
    theirs = await treesAlong((id) => resticBlob(repo, id), snapshot.tree, names);
  });

  afterAll(async () => {
    if (previousZone === undefined) delete process.env.TZ;
    else process.env.TZ = previousZone;
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the archived folder and the folders below it the ids restic gives them', async () => {
    const store = new MemoryStore();
    const polynomial = JSON.parse(await restic(repo, ['cat', 'config'])).chunker_polynomial;
    const archiver = new Archiver({ store, chunker: () => new RabinChunker(polynomial) });
    await archiver.addTree('files', [path.join(dir, 'src')]);
    const root = await archiver.finish();
    const ours = await treesAlong((id) => store.load('tree', id), root, ['files', ...names]);
    // From the tree that lists src (its metadata included) down; the folders above it (/tmp)
    // may change between the two runs.
    expect(ours.slice(-2)).toEqual(theirs.slice(-2));
    const src = decodeTree(await store.load('tree', ours.at(-1)!), 'src');
    const sub = decodeTree(await store.load('tree', src.find((n) => n.name === 'sub')!.subtree!), 'sub');
    expect(src.map((n) => n.name)).toContain('abs');
    expect(sub.map((n) => n.name)).toEqual(['big', 'deeper']);
  });

  it('reads every tree restic wrote and writes it back unchanged', async () => {
    const seen: string[] = [];
    const walk = async (id: string): Promise<void> => {
      const bytes = await resticBlob(repo, id);
      const nodes = decodeTree(bytes, id);
      expect(encodeTree(nodes).equals(bytes)).toBe(true);
      seen.push(id);
      for (const node of nodes) if (node.subtree) await walk(node.subtree);
    };
    await walk(theirs[0]!);
    expect(seen.length).toBe(names.length + 3);
  });
});

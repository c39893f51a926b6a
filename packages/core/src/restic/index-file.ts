import { BackupError } from '../errors.js';
import type { PackedBlob } from './pack.js';
import type { BlobType } from './store.js';

/**
 * Index files (`index/<id>`, doc/design.rst "Indexing"): which blobs each pack holds, at which
 * offset, with which sealed and plaintext length. An index file only names packs that are
 * already stored; `supersedes` lists index files it replaces.
 */

export interface IndexBlobJson {
  id: string;
  type: BlobType;
  offset: number;
  length: number;
  /** Only for compressed blobs. */
  uncompressed_length?: number;
}

export interface IndexPackJson {
  id: string;
  blobs: IndexBlobJson[];
}

export interface IndexJson {
  supersedes?: string[];
  packs: IndexPackJson[];
}

export interface StoredPack {
  id: string;
  blobs: readonly PackedBlob[];
}

/** restic starts a new index file at 50,000 blobs; so do we, to keep each file small. */
export const MAX_BLOBS_PER_INDEX = 50_000;

/** The index files naming `packs`: as many as needed to keep each under MAX_BLOBS_PER_INDEX blobs. */
export function indexFiles(packs: readonly StoredPack[], supersedes: readonly string[] = []): IndexJson[] {
  const files: IndexJson[] = [];
  let current: IndexJson | undefined;
  let blobs = 0;
  for (const pack of packs) {
    if (!current || (blobs > 0 && blobs + pack.blobs.length > MAX_BLOBS_PER_INDEX)) {
      current = { packs: [] };
      files.push(current);
      blobs = 0;
    }
    current.packs.push({ id: pack.id, blobs: pack.blobs.map(blobJson) });
    blobs += pack.blobs.length;
  }
  if (supersedes.length) {
    if (!files[0]) files.push({ packs: [] });
    (files[0] as IndexJson).supersedes = [...supersedes];
  }
  return files;
}

function blobJson(b: PackedBlob): IndexBlobJson {
  return {
    id: b.id.toString('hex'),
    type: b.type,
    offset: b.offset,
    length: b.length,
    ...(b.uncompressedLength ? { uncompressed_length: b.uncompressedLength } : {}),
  };
}

const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * Checks the shape of a decrypted index file; `name` names it in errors. Accepts restic's
 * first format too (a bare array of packs).
 */
export function parseIndexJson(value: unknown, name: string): IndexJson {
  const bad = (problem: string) => new BackupError('E_INTEGRITY', `${name}: ${problem}`, { details: { object: name } });
  const root = (Array.isArray(value) ? { packs: value } : value) as Partial<IndexJson> | null;
  if (!root || typeof root !== 'object' || !Array.isArray(root.packs)) throw bad('is not an index (no "packs" list)');
  if (root.supersedes !== undefined && root.supersedes !== null) {
    if (!Array.isArray(root.supersedes) || !root.supersedes.every((s) => typeof s === 'string' && HEX_ID.test(s))) {
      throw bad('"supersedes" is not a list of ids');
    }
  }
  root.packs.forEach((pack: Partial<IndexPackJson>, i) => {
    if (!pack || typeof pack.id !== 'string' || !HEX_ID.test(pack.id) || !Array.isArray(pack.blobs)) {
      throw bad(`packs[${i}] is not {"id", "blobs"}`);
    }
    pack.blobs.forEach((b: Partial<IndexBlobJson>, j) => {
      const ok =
        b &&
        typeof b.id === 'string' &&
        HEX_ID.test(b.id) &&
        (b.type === 'data' || b.type === 'tree') &&
        isUint32(b.offset) &&
        isUint32(b.length) &&
        (b.uncompressed_length === undefined || isUint32(b.uncompressed_length));
      if (!ok) throw bad(`packs[${i}].blobs[${j}] (of pack ${pack.id}) is not a valid blob entry`);
    });
  });
  return { ...(root.supersedes ? { supersedes: root.supersedes } : {}), packs: root.packs as IndexPackJson[] };
}

function isUint32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

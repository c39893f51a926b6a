import { createHash, randomInt } from 'node:crypto';
import { getRange } from '../destination.js';
import { isBackupError } from '../errors.js';
import type { IndexPackJson } from './index-file.js';
import { HEADER_TAIL_GUESS, packSizeOf, readHeader, type PackedBlob } from './pack.js';
import { packKey } from './pack-writer.js';
import { getBytes, readAll, type ResticRepository } from './repository.js';
import { decompressExact } from './zstd.js';

/**
 * Checks of a repository's storage, as `restic check` makes them: the structure (index files
 * open, every pack they name exists with the size they imply and a header that agrees with them,
 * snapshot files open) and, for a share of the packs, the data (the pack hashes to its name,
 * every blob decrypts and hashes to its id). Each finding names the object.
 */

export interface CheckFinding {
  /** `index/<id>`, `data/ab/<id>`, `data blob <id> in data/ab/<pack>`, `snapshots/<id>`. */
  object: string;
  problem: string;
  /** Errors lose data; warnings (a pack no index names, left by an interrupted run) do not. */
  severity: 'error' | 'warning';
}

export interface CheckResult {
  findings: CheckFinding[];
  indexFiles: number;
  packs: number;
  blobs: number;
  /** Packs whose data was read (read-data check only). */
  packsRead: number;
}

interface IndexedPack {
  blobs: IndexPackJson['blobs'];
  /** The index file that names it (the first, when several do). */
  indexFile: string;
}

export async function checkStructure(repo: ResticRepository): Promise<CheckResult> {
  const findings: CheckFinding[] = [];
  const { packs, indexFiles } = await loadIndex(repo, findings);
  const stored = await listPacks(repo, findings);
  for (const [id, pack] of packs) {
    const size = stored.get(id);
    const key = packKey(id);
    if (size === undefined) {
      findings.push(error(key, `is missing, but ${pack.indexFile} names it (${pack.blobs.length} blobs)`));
      continue;
    }
    const expected = packSizeOf(pack.blobs.map((b) => ({ length: b.length, uncompressedLength: b.uncompressed_length ?? 0 })));
    if (size !== expected) {
      findings.push(error(key, `is ${size} bytes, ${pack.indexFile} implies ${expected} (truncated, extended or replaced)`));
      continue;
    }
    try {
      findings.push(...compareWithIndex(key, await readPackHeader(repo, id, size), pack));
    } catch (err) {
      findings.push(error(key, problemOf(err, key)));
    }
  }
  for (const id of stored.keys()) {
    if (!packs.has(id)) findings.push({ object: packKey(id), problem: 'is in no index (left by an interrupted run; prune removes it)', severity: 'warning' });
  }
  for (const id of await repo.list('snapshots')) {
    await repo.loadJson('snapshots', id).catch((err: unknown) => findings.push(error(`snapshots/${id}`, problemOf(err, `snapshots/${id}`))));
  }
  let blobs = 0;
  for (const p of packs.values()) blobs += p.blobs.length;
  return { findings, indexFiles, packs: packs.size, blobs, packsRead: 0 };
}

export interface ReadDataOptions {
  /** The share of packs to read, 0..1 (1: all). Which ones is random, so repeated runs cover all. */
  share?: number;
}

/** Reads a share of the indexed packs whole and checks every byte of them. */
export async function checkData(repo: ResticRepository, options: ReadDataOptions = {}): Promise<CheckResult> {
  const findings: CheckFinding[] = [];
  const { packs, indexFiles } = await loadIndex(repo, findings);
  const ids = [...packs.keys()];
  const share = Math.min(1, Math.max(0, options.share ?? 1));
  const count = share === 0 ? 0 : Math.max(1, Math.round(ids.length * share));
  for (let i = 0; i < count; i++) {
    const j = i + randomInt(ids.length - i);
    [ids[i], ids[j]] = [ids[j] as string, ids[i] as string];
  }
  let blobs = 0;
  for (const id of ids.slice(0, count)) {
    const pack = packs.get(id) as IndexedPack;
    blobs += pack.blobs.length;
    findings.push(...(await readPack(repo, id, pack)));
  }
  return { findings, indexFiles, packs: packs.size, blobs, packsRead: count };
}

async function loadIndex(repo: ResticRepository, findings: CheckFinding[]): Promise<{ packs: Map<string, IndexedPack>; indexFiles: number }> {
  const packs = new Map<string, IndexedPack>();
  const files = await repo.list('index');
  for (const file of files) {
    const name = `index/${file}`;
    try {
      for (const pack of (await repo.loadIndexFile(file)).packs) {
        if (!packs.has(pack.id)) packs.set(pack.id, { blobs: pack.blobs, indexFile: name });
      }
    } catch (err) {
      findings.push(error(name, problemOf(err, name)));
    }
  }
  return { packs, indexFiles: files.length };
}

async function listPacks(repo: ResticRepository, findings: CheckFinding[]): Promise<Map<string, number>> {
  const stored = new Map<string, number>();
  for (const o of await repo.destination.list('data/')) {
    const m = /^data\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(o.key);
    if (m && (m[2] as string).startsWith(m[1] as string)) stored.set(m[2] as string, o.size);
    else findings.push({ object: o.key, problem: 'is not a pack file name (data/<2 hex>/<64 hex>)', severity: 'warning' });
  }
  return stored;
}

/** A pack's header, read from its end: one ranged read, two for large headers. */
export async function readPackHeader(repo: ResticRepository, id: string, size: number): Promise<PackedBlob[]> {
  const key = packKey(id);
  let want = Math.min(size, HEADER_TAIL_GUESS);
  for (;;) {
    const tail = await readAll(await getRange(repo.destination, key, size - want, want));
    const r = readHeader(repo.masterKey, tail, size, key);
    if (Array.isArray(r)) return r;
    want = r.need;
  }
}

function compareWithIndex(key: string, header: PackedBlob[], pack: IndexedPack): CheckFinding[] {
  const line = (type: string, id: string, offset: number, length: number, ulen: number) => `${type} ${id} @${offset}+${length}/${ulen}`;
  const fromHeader = new Set(header.map((b) => line(b.type, b.id.toString('hex'), b.offset, b.length, b.uncompressedLength)));
  const fromIndex = new Set(pack.blobs.map((b) => line(b.type, b.id, b.offset, b.length, b.uncompressed_length ?? 0)));
  const findings: CheckFinding[] = [];
  for (const l of fromIndex) if (!fromHeader.has(l)) findings.push(error(key, `${pack.indexFile} lists ${l}, the pack header does not`));
  for (const l of fromHeader) if (!fromIndex.has(l)) findings.push(error(key, `its header lists ${l}, ${pack.indexFile} does not`));
  return findings;
}

async function readPack(repo: ResticRepository, id: string, pack: IndexedPack): Promise<CheckFinding[]> {
  const key = packKey(id);
  let bytes: Buffer;
  try {
    bytes = await getBytes(repo.destination, key);
  } catch (err) {
    return [error(key, problemOf(err, key))];
  }
  const findings: CheckFinding[] = [];
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash !== id) findings.push(error(key, `its content hashes to ${hash}, not to its name (altered or damaged)`));
  let header: PackedBlob[] = [];
  try {
    const r = readHeader(repo.masterKey, bytes, bytes.length, key);
    header = Array.isArray(r) ? r : [];
  } catch (err) {
    findings.push(error(key, problemOf(err, key)));
    // Without a trustworthy header, the index still says where each blob should be.
    header = pack.blobs.map((b) => ({
      type: b.type,
      id: Buffer.from(b.id, 'hex'),
      offset: b.offset,
      length: b.length,
      uncompressedLength: b.uncompressed_length ?? 0,
    }));
  }
  for (const b of header) {
    const name = `${b.type} blob ${b.id.toString('hex')} in ${key}`;
    try {
      const sealed = bytes.subarray(b.offset, b.offset + b.length);
      let plain = repo.masterKey.open(sealed, name);
      if (b.uncompressedLength) plain = decompressExact(plain, b.uncompressedLength, name);
      if (createHash('sha256').update(plain).digest('hex') !== b.id.toString('hex')) findings.push(error(name, 'does not hash to its id'));
    } catch (err) {
      findings.push(error(name, problemOf(err, name)));
    }
  }
  return findings;
}

function error(object: string, problem: string): CheckFinding {
  return { object, problem, severity: 'error' };
}

/** An error's message without the object's name in front, which the finding carries. */
function problemOf(err: unknown, object: string): string {
  const message = isBackupError(err) || err instanceof Error ? err.message : String(err);
  const at = message.indexOf(`${object}: `);
  return at >= 0 ? message.slice(at + object.length + 2) : message;
}

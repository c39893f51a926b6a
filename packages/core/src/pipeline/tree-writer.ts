import { closeSync, constants, fchmodSync, fchownSync, ftruncateSync, futimesSync, lchownSync, lutimesSync, mkdirSync, openSync, symlinkSync, chmodSync, chownSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BackupError } from '../errors.js';
import { ExtractionGuard, restoredMode, rewriteAbsoluteSymlink, symlinksStayInside, type TreeStats } from './tar-extract.js';
import type { PathSelection } from './path-selection.js';
import { TarScanner, type TarEntryHeader } from './tar-scan.js';

export interface TreeWriterOptions {
  label: string;
  /** Keep the archive's uid/gid and setuid/setgid bits (only meaningful as root). Default: files belong to whoever restores. */
  preserveOwner?: boolean;
  /** Refuse an archive whose files hold more bytes than this (what the manifest records). */
  maxBytes?: number;
  /** Refuse entries nested deeper than this. Default MAX_TREE_DEPTH. */
  maxDepth?: number;
  /** Write only these paths (and the folders above them); every entry is still checked. */
  select?: PathSelection | undefined;
}

export interface ExtractOptions extends TreeWriterOptions {
  /** Told about entries that were changed to restore safely (absolute symlinks made relative). */
  onWarning?: (message: string) => void;
}

/**
 * The one safe tar extractor (restore, and plugins' restore tests): extracts a tar stream, or
 * the chunks `input` hands to `write`, into `dir` (a fresh, empty, private folder) through a
 * TreeWriter, then follows every symlink to check it stays inside `dir`. The first unsafe entry
 * stops it with an E_RESTORE error naming the entry; a damaged archive is E_INTEGRITY.
 */
export async function extractTree(
  input: Readable | ((write: (chunk: Buffer) => void) => Promise<unknown>),
  dir: string,
  options: ExtractOptions,
): Promise<TreeStats> {
  const writer = new TreeWriter(dir, options);
  try {
    if (typeof input === 'function') await input((chunk) => writer.update(chunk));
    else for await (const chunk of input) writer.update(chunk as Buffer);
    const stats = writer.finish();
    await symlinksStayInside(dir, writer.symlinks, options.label);
    if (writer.rewrittenSymlinks) options.onWarning?.(`${options.label}: ${writer.rewrittenSymlinks} absolute symlink(s) rewritten to point inside the restored tree`);
    return stats;
  } catch (err) {
    writer.abort();
    throw err;
  }
}

const CREATE_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Runs of zeros this long, at this alignment, are left as holes. */
const HOLE_BLOCK = 4096;
const ZEROS = Buffer.alloc(HOLE_BLOCK);

function isZeros(data: Buffer, from: number, to: number): boolean {
  // Most data blocks differ in their first or last byte: a cheap look before the full compare.
  if (data[from] !== 0 || data[to - 1] !== 0) return false;
  return data.compare(ZEROS, 0, to - from, from, to) === 0;
}

interface FolderToFinish {
  abs: string;
  mode: number;
  mtime: Date | undefined;
  uid: number | undefined;
  gid: number | undefined;
}

/**
 * Writes the entries of a tar stream (fed through `update`) under `root`, a fresh private folder
 * that nothing else writes to. Each entry is checked (`unsafeEntryReason`) and then created with
 * plain system calls, never through a symlink: files with O_CREAT|O_EXCL|O_NOFOLLOW, nothing may
 * be written below a symlink or a file the archive made, and no path twice. Folders are created
 * private and get their modes and times at `finish`, deepest first, so a read-only folder can
 * still be filled.
 *
 * The calls are synchronous on purpose: a restore is one sequential stream, and thousands of
 * small files cost several thread-pool round trips each when done asynchronously.
 */
export class TreeWriter {
  readonly #root: string;
  readonly #label: string;
  readonly #preserveOwner: boolean;
  readonly #scanner: TarScanner;
  readonly #guard: ExtractionGuard;
  readonly #select: PathSelection | undefined;
  #rewritten = 0;
  /** What this writer created, by archive path (without `./` and trailing slashes). */
  readonly #created = new Map<string, 'directory' | 'file' | 'symlink'>();
  readonly #folders = new Map<string, FolderToFinish>();
  readonly #now = new Date();
  #fd: number | undefined;
  #position = 0;
  /** Where the data written so far ends (less than #position after a final hole). */
  #written = 0;
  /** The start of a block at #position, until the block is complete. */
  readonly #pending = Buffer.alloc(HOLE_BLOCK);
  #pendingLength = 0;

  constructor(root: string, options: TreeWriterOptions) {
    this.#root = root;
    this.#label = options.label;
    this.#preserveOwner = options.preserveOwner ?? false;
    this.#select = options.select;
    this.#guard = new ExtractionGuard({ maxBytes: options.maxBytes, maxDepth: options.maxDepth });
    this.#scanner = new TarScanner(options.label, {
      onEntry: (entry) => this.#entry(entry),
      onData: (data) => this.#data(data),
      onEntryEnd: (entry) => this.#entryEnd(entry),
    });
  }

  /** The symlinks written (archive paths): check them with `symlinksStayInside` once `finish`ed. */
  get symlinks(): ReadonlySet<string> {
    if (!this.#select) return this.#guard.symlinks;
    return new Set([...this.#guard.symlinks].filter((key) => this.#created.get(key) === 'symlink'));
  }

  /** How many absolute symlink targets were made relative (`rewriteAbsoluteSymlink`). */
  get rewrittenSymlinks(): number {
    return this.#rewritten;
  }

  update(chunk: Buffer): void {
    this.#scanner.update(chunk);
  }

  /** Checks the archive ended properly, gives folders their modes and times; returns what was restored. */
  finish(): TreeStats {
    const stats = this.#scanner.end();
    const folders = [...this.#folders.values()].sort((a, b) => b.abs.length - a.abs.length);
    for (const f of folders) {
      if (this.#preserveOwner && f.uid !== undefined && f.gid !== undefined) chownSync(f.abs, f.uid, f.gid);
      chmodSync(f.abs, f.mode);
      if (f.mtime) utimesSync(f.abs, this.#now, f.mtime);
    }
    return stats;
  }

  /** Closes a file left open by a failure. */
  abort(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #refuse(entryPath: string, reason: string): BackupError {
    return new BackupError('E_RESTORE', `${this.#label}: refused archive entry ${JSON.stringify(entryPath)}: ${reason}; nothing was restored`);
  }

  #entry(entry: TarEntryHeader): void {
    const reason = this.#guard.check(entry);
    if (reason) throw this.#refuse(entry.path, reason);
    const parts = entry.path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0) {
      if (entry.type === 'Directory') return;
      throw this.#refuse(entry.path, 'an entry without a name');
    }
    if (this.#select && !this.#select.keeps(entry.path, entry.type)) return;
    const key = parts.join('/');
    this.#makeParents(entry.path, parts);
    const abs = path.join(this.#root, key);
    const before = this.#created.get(key);
    if (before && !(before === 'directory' && entry.type === 'Directory')) throw this.#refuse(entry.path, 'appears twice in the archive');
    const mode = restoredMode(entry.mode ?? 0o644, this.#preserveOwner)!;
    switch (entry.type) {
      case 'Directory':
        if (!before) mkdirSync(abs, 0o700);
        this.#created.set(key, 'directory');
        this.#folders.set(key, { abs, mode, mtime: entry.mtime, uid: entry.uid, gid: entry.gid });
        return;
      case 'SymbolicLink':
        if (entry.linkpath!.startsWith('/')) {
          entry.linkpath = rewriteAbsoluteSymlink(entry.path, entry.linkpath!);
          this.#rewritten++;
        }
        symlinkSync(entry.linkpath!, abs);
        this.#created.set(key, 'symlink');
        if (this.#preserveOwner && entry.uid !== undefined && entry.gid !== undefined) lchownSync(abs, entry.uid, entry.gid);
        if (entry.mtime) lutimesSync(abs, this.#now, entry.mtime);
        return;
      default:
        this.#fd = openSync(abs, CREATE_FILE, 0o600);
        this.#position = 0;
        this.#written = 0;
        this.#pendingLength = 0;
        this.#created.set(key, 'file');
    }
  }

  #makeParents(entryPath: string, parts: string[]): void {
    let key = '';
    for (let i = 0; i < parts.length - 1; i++) {
      key = key ? `${key}/${parts[i]}` : parts[i]!;
      const kind = this.#created.get(key);
      if (kind === 'directory') continue;
      if (kind === 'symlink') throw this.#refuse(entryPath, `would be written through the symlink ${JSON.stringify(key)}`);
      if (kind === 'file') throw this.#refuse(entryPath, `${JSON.stringify(key)} is a file in the archive`);
      // A folder the archive does not list (the parents of a backed-up path): private.
      mkdirSync(path.join(this.#root, key), 0o700);
      this.#created.set(key, 'directory');
    }
  }

  /**
   * Writes file data at its position, skipping whole blocks of zeros: the file is new, so what is
   * never written reads as zeros, and a sparse file (a VM image, a database's preallocated space)
   * takes on disk what it took before, not its full size. Data comes in pieces of any size: a
   * block not yet complete waits in #pending. `#entryEnd` writes the last one and sets the size.
   */
  #data(data: Buffer): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    let offset = 0;
    if (this.#pendingLength > 0 || data.length < HOLE_BLOCK) {
      offset = data.copy(this.#pending, this.#pendingLength, 0, HOLE_BLOCK - this.#pendingLength);
      this.#pendingLength += offset;
      if (this.#pendingLength < HOLE_BLOCK) return;
      this.#pendingLength = 0;
      this.#data(this.#pending);
    }
    // Here #position is at a block boundary.
    while (data.length - offset >= HOLE_BLOCK) {
      if (isZeros(data, offset, offset + HOLE_BLOCK)) {
        offset += HOLE_BLOCK;
        this.#position += HOLE_BLOCK;
        continue;
      }
      // Up to the next block of zeros in one call.
      let end = offset + HOLE_BLOCK;
      while (end + HOLE_BLOCK <= data.length && !isZeros(data, end, end + HOLE_BLOCK)) end += HOLE_BLOCK;
      this.#write(fd, data, offset, end);
      offset = end;
    }
    this.#pendingLength = data.copy(this.#pending, 0, offset);
  }

  #write(fd: number, data: Buffer, from: number, to: number): void {
    for (let at = from; at < to; ) at += writeSync(fd, data, at, to - at, this.#position + (at - from));
    this.#position += to - from;
    this.#written = this.#position;
  }

  #entryEnd(entry: TarEntryHeader): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    try {
      if (this.#pendingLength) {
        if (isZeros(this.#pending, 0, this.#pendingLength)) this.#position += this.#pendingLength;
        else this.#write(fd, this.#pending, 0, this.#pendingLength);
        this.#pendingLength = 0;
      }
      // Zeros skipped at the end of the file: the size makes them a hole.
      if (this.#position > this.#written) ftruncateSync(fd, this.#position);
      if (this.#preserveOwner && entry.uid !== undefined && entry.gid !== undefined) fchownSync(fd, entry.uid, entry.gid);
      fchmodSync(fd, restoredMode(entry.mode ?? 0o644, this.#preserveOwner)!);
      if (entry.mtime) futimesSync(fd, this.#now, entry.mtime);
    } finally {
      closeSync(fd);
    }
  }
}

import { Header } from 'tar/header';
import { Pax } from 'tar/pax';
import { BackupError } from '../errors.js';
import { undecodableError } from './stored-bytes.js';
import type { TreeStats } from './tar-extract.js';

const BLOCK = 512;
/** pax and GNU long-name records larger than this are refused (the `tar` package ignores them). */
const MAX_META = 1024 * 1024;

/** A tar entry as the scanner hands it on: its header, pax and GNU long names applied. */
export type TarEntryHeader = Header & { path: string; type: NonNullable<Header['type']>; size: number };

export interface TarScanHandlers {
  /** Each entry, in order, before its content. */
  onEntry?: (entry: TarEntryHeader) => void;
  /** Content of the current entry (a view, valid only during the call). */
  onData?: (data: Buffer) => void;
  /** The current entry's content is complete. */
  onEntryEnd?: (entry: TarEntryHeader) => void;
}

const META_TYPES = new Set(['ExtendedHeader', 'OldExtendedHeader', 'GlobalExtendedHeader', 'NextFileHasLongPath', 'OldGnuLongPath', 'NextFileHasLongLinkpath']);
const ENTRY_TYPES = new Set(['File', 'OldFile', 'Link', 'SymbolicLink', 'CharacterDevice', 'BlockDevice', 'Directory', 'FIFO', 'ContiguousFile', 'GNUDumpDir']);
const LINK_TYPES = new Set(['Link', 'SymbolicLink']);

/**
 * Walks a tar stream fed in chunks, synchronously: checks every header (checksum, path, link
 * target), applies pax and GNU long-name records as the `tar` package's strict parser does, skips
 * or hands on content, and requires the end-of-archive marker. Headers are decoded with the
 * `tar` package; content is never copied. Entry types the `tar` package ignores are skipped.
 */
export class TarScanner {
  readonly stats: TreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  readonly #label: string;
  readonly #handlers: TarScanHandlers;
  readonly #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  /** Content bytes of the current entry still to come, then its padding. */
  #remain = 0;
  #padding = 0;
  #entry: TarEntryHeader | undefined;
  #meta: { type: string; chunks: Buffer[]; size: number } | undefined;
  #ignoring = false;
  #ex: Record<string, unknown> | undefined;
  #gex: Record<string, unknown> | undefined;
  #nullBlocks = 0;
  #ended = false;
  #offset = 0;

  constructor(label: string, handlers: TarScanHandlers = {}) {
    this.#label = label;
    this.#handlers = handlers;
  }

  get ended(): boolean {
    return this.#ended;
  }

  update(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#ended) return;
      if (this.#remain > 0) {
        const n = Math.min(this.#remain, chunk.length - pos);
        const data = chunk.subarray(pos, pos + n);
        if (this.#meta) this.#meta.chunks.push(Buffer.from(data));
        else if (!this.#ignoring) this.#handlers.onData?.(data);
        this.#remain -= n;
        pos += n;
        this.#offset += n;
        if (this.#remain === 0) this.#finishContent();
        continue;
      }
      if (this.#padding > 0) {
        const n = Math.min(this.#padding, chunk.length - pos);
        this.#padding -= n;
        pos += n;
        this.#offset += n;
        continue;
      }
      if (this.#headerFill === 0 && chunk.length - pos >= BLOCK) {
        this.#consumeHeader(chunk, pos);
        pos += BLOCK;
        this.#offset += BLOCK;
        continue;
      }
      const n = Math.min(BLOCK - this.#headerFill, chunk.length - pos);
      chunk.copy(this.#header, this.#headerFill, pos, pos + n);
      this.#headerFill += n;
      pos += n;
      this.#offset += n;
      if (this.#headerFill === BLOCK) {
        this.#headerFill = 0;
        this.#consumeHeader(this.#header, 0);
      }
    }
  }

  /** Checks that the archive ended where it should; returns what it holds. */
  end(): TreeStats {
    if (this.#remain > 0 || this.#padding > 0 || this.#headerFill > 0) {
      throw this.#error(`truncated: it ends inside ${this.#entry ? JSON.stringify(this.#entry.path) : 'a header'}`);
    }
    if (!this.#ended) throw this.#error('truncated: it has no end-of-archive marker');
    return this.stats;
  }

  #consumeHeader(buf: Buffer, off: number): void {
    if (isZeroBlock(buf, off)) {
      this.#nullBlocks++;
      if (this.#nullBlocks === 2) this.#ended = true;
      return;
    }
    this.#nullBlocks = 0;
    let header: Header;
    try {
      header = new Header(buf, off, this.#ex as never, this.#gex as never);
    } catch (err) {
      throw this.#error((err as Error).message);
    }
    // A pax or GNU long path is the whole path: Header joins a ustar prefix in front of it (the
    // `tar` package's ReadEntry applies it again afterwards, as this does).
    if (typeof this.#ex?.path === 'string') header.path = this.#ex.path;
    if (typeof this.#ex?.linkpath === 'string') header.linkpath = this.#ex.linkpath;
    if (!header.cksumValid) throw this.#error(`checksum failure in the header at byte ${this.#offset}`);
    if (!header.path) throw this.#error(`an entry without a path at byte ${this.#offset}`);
    const type = header.type ?? '';
    if (LINK_TYPES.has(type) && !header.linkpath) throw this.#error(`${JSON.stringify(header.path)}: a link without a target`);
    if (!LINK_TYPES.has(type) && !/^(Global)?ExtendedHeader$/.test(type) && header.linkpath) {
      throw this.#error(`${JSON.stringify(header.path)}: a link target on a ${type} entry`);
    }
    const size = header.size ?? 0;
    this.#remain = size;
    this.#padding = (BLOCK - (size % BLOCK)) % BLOCK;
    this.#ignoring = false;
    if (META_TYPES.has(type)) {
      if (size > MAX_META) throw this.#error(`${JSON.stringify(header.path)}: an extended header of ${size} bytes`);
      this.#meta = { type, chunks: [], size };
      if (size === 0) this.#finishContent();
      return;
    }
    this.#ex = undefined;
    if (!ENTRY_TYPES.has(type)) {
      this.#ignoring = true;
      if (size === 0) this.#ignoring = false;
      return;
    }
    const entry = header as TarEntryHeader;
    this.#entry = entry;
    if (type === 'Directory') this.stats.directories++;
    else if (type === 'SymbolicLink') this.stats.symlinks++;
    else {
      this.stats.files++;
      this.stats.bytes += size;
    }
    this.#handlers.onEntry?.(entry);
    if (size === 0) this.#finishContent();
  }

  #finishContent(): void {
    const meta = this.#meta;
    if (meta) {
      this.#meta = undefined;
      const text = Buffer.concat(meta.chunks).toString('utf8');
      switch (meta.type) {
        case 'ExtendedHeader':
        case 'OldExtendedHeader':
          this.#ex = Pax.parse(text, this.#ex as never, false) as unknown as Record<string, unknown>;
          break;
        case 'GlobalExtendedHeader':
          this.#gex = Pax.parse(text, this.#gex as never, true) as unknown as Record<string, unknown>;
          break;
        case 'NextFileHasLongPath':
        case 'OldGnuLongPath':
          this.#ex = { ...this.#ex, path: text.replace(/\0.*/, '') };
          break;
        case 'NextFileHasLongLinkpath':
          this.#ex = { ...this.#ex, linkpath: text.replace(/\0.*/, '') };
          break;
      }
      return;
    }
    if (this.#ignoring) {
      this.#ignoring = false;
      return;
    }
    const entry = this.#entry;
    if (entry) this.#handlers.onEntryEnd?.(entry);
  }

  #error(message: string): BackupError {
    return undecodableError(`${this.#label}: the archive cannot be read: ${message}`);
  }
}

function isZeroBlock(buf: Buffer, off: number): boolean {
  for (let i = off; i < off + BLOCK; i++) {
    if (buf[i] !== 0) return false;
  }
  return true;
}

import { constants, promises as fsp } from 'node:fs';
import { BackupError } from '../errors.js';
import type { ResticNode } from './node.js';
import { loadBlobs, type BlobId, type BlobStore } from './store.js';

/**
 * The content of restored files, written as restic's restorer writes it: files are gathered in
 * batches as the trees are walked; a batch's blobs are loaded each pack once, in pack order
 * (`loadBlobs`), and each blob is written at every offset where the batch's files hold it. A
 * file is created (never through a link, never over an existing entry) when its first blob
 * arrives, and gets its metadata (mode, times) and is closed once its last blob is written. A
 * batch holds at most BATCH_BLOBS blob references and BATCH_FILES files of several blobs (the
 * files that may be open at once), so memory and file descriptors stay bounded however large
 * the snapshot.
 */

export interface RestoredFile {
  at: string | Buffer;
  /** Its path from the restore target, for messages. */
  here: string[];
  node: ResticNode;
}

const BATCH_FILES = 256;
const BATCH_BLOBS = 32_768;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

interface Pending extends RestoredFile {
  handle: Promise<fsp.FileHandle> | undefined;
  /** Writes still to do. */
  remaining: number;
}

interface Target {
  file: Pending;
  offset: number;
  length: number;
}

export class FileContentWriter {
  readonly #store: BlobStore;
  readonly #label: string;
  readonly #finish: (handle: fsp.FileHandle, file: RestoredFile) => Promise<void>;
  #files: Pending[] = [];
  #targets = new Map<BlobId, Target[]>();
  #refs = 0;
  #multiBlob = 0;

  /** `finish` sets a written file's metadata through its handle (which is closed afterwards). */
  constructor(store: BlobStore, label: string, finish: (handle: fsp.FileHandle, file: RestoredFile) => Promise<void>) {
    this.#store = store;
    this.#label = label;
    this.#finish = finish;
  }

  /** Queues a file's content (an empty file is written at once). */
  async add(file: RestoredFile): Promise<void> {
    const content = file.node.content ?? [];
    const pending: Pending = { ...file, handle: undefined, remaining: content.length };
    if (!content.length) {
      await this.#done(pending, await this.#open(pending));
      return;
    }
    this.#files.push(pending);
    if (content.length > 1) this.#multiBlob++;
    let offset = 0;
    for (const id of content) {
      // The restore's first pass checked that every blob is held and the sizes add up.
      const length = this.#store.plaintextSize('data', id) ?? 0;
      let list = this.#targets.get(id);
      if (!list) this.#targets.set(id, (list = []));
      list.push({ file: pending, offset, length });
      offset += length;
      this.#refs++;
    }
    if (this.#multiBlob >= BATCH_FILES || this.#refs >= BATCH_BLOBS) await this.flush();
  }

  /** Writes the batch's content; on failure, closes its files (the caller removes them). */
  async flush(): Promise<void> {
    const files = this.#files;
    const targets = this.#targets;
    this.#files = [];
    this.#targets = new Map();
    this.#refs = 0;
    this.#multiBlob = 0;
    if (!files.length) return;
    try {
      await loadBlobs(this.#store, 'data', targets.keys(), async (id, plaintext) => {
        for (const t of targets.get(id) ?? []) {
          if (plaintext.length !== t.length) {
            throw new BackupError('E_INTEGRITY', `${this.#label}: ${t.file.here.join('/')}: data blob ${id} holds ${plaintext.length} bytes, the index says ${t.length}`);
          }
          const handle = await this.#open(t.file);
          for (let at = 0; at < plaintext.length; ) at += (await handle.write(plaintext, at, plaintext.length - at, t.offset + at)).bytesWritten;
          if (--t.file.remaining === 0) await this.#done(t.file, handle);
        }
      });
    } catch (err) {
      await closeUnfinished(files);
      throw err;
    }
  }

  /** Closes the files of the batch not written yet (a failed restore; the caller removes them). */
  async abort(): Promise<void> {
    const files = this.#files;
    this.#files = [];
    this.#targets = new Map();
    await closeUnfinished(files);
  }

  #open(file: Pending): Promise<fsp.FileHandle> {
    file.handle ??= fsp.open(file.at, CREATE_FLAGS, 0o600);
    return file.handle;
  }

  async #done(file: Pending, handle: fsp.FileHandle): Promise<void> {
    try {
      await this.#finish(handle, file);
    } finally {
      await handle.close();
    }
  }
}

async function closeUnfinished(files: Pending[]): Promise<void> {
  const open = files.filter((f) => f.remaining > 0 && f.handle);
  await Promise.all(open.map((f) => f.handle!.then((h) => h.close()).catch(() => {})));
}

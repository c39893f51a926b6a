import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { getRange, type Destination } from '../destination.js';
import { BackupError } from '../errors.js';
import { BlobIndex, PackList } from './blob-index.js';
import { MasterKey } from './crypto.js';
import { CryptoPool } from './crypto-pool.js';
import { openJson, readAll, sealJson, sha256Hex } from './files.js';
import { indexFiles, parseIndexJson, type IndexJson } from './index-file.js';
import { loadIndex, prefetchIndex, type IndexPrefetch, type LoadedIndex } from './index-loader.js';
import { DEFAULT_KDF, openKeyFile, sealKeyFile, type KdfParams } from './keys.js';
import { RepositoryLock, type LockOptions } from './locks.js';
import { loadInPackOrder, type BlobSink, type PackSource } from './pack-reader.js';
import { DEFAULT_PACK_SIZE, DEFAULT_UPLOADS, PackWriter, SEALING, packKey, type PackWriterOptions } from './pack-writer.js';
import { newRepoConfig, parseRepoConfig, repoConfigJson, type RepoConfig } from './repo-config.js';
import type { BlobId, BlobStore, BlobType, FileType, JsonFileStore } from './store.js';
import { decompressExact } from './zstd.js';

export interface OpenOptions {
  password: string;
  /** Target pack size in bytes; restic 0.14's default, 16 MiB. */
  packSize?: number;
  /** Packs uploading at once (each holds its memory until done). */
  uploads?: number;
  /**
   * Load the index when opening (default). Without it, `has`/`load` know only blobs saved since;
   * a check opens so, to report a damaged index file instead of failing on it.
   */
  loadIndex?: boolean;
  /** Compress and seal on the process's crypto threads (default); false: on the calling thread. */
  cryptoThreads?: boolean;
}

export interface InitOptions extends OpenOptions {
  /** scrypt's cost for the first key; restic-like by default, lower only in tests. */
  kdf?: KdfParams;
  /** A chunker polynomial to use (hex); a random irreducible one by default. */
  chunkerPolynomial?: string;
}

const CONFIG = 'config';
const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * A restic repository (format version 2, doc/design.rst) on any Destination: the backupRoot
 * folder, or a local, S3, SFTP or rsync destination. Stock restic opens the same objects with
 * `-r DIR`, `-r s3:…`, `-r sftp:…`.
 */
export class ResticRepository implements BlobStore, JsonFileStore {
  readonly destination: Destination;
  readonly config: RepoConfig;
  readonly #key: MasterKey;
  readonly #index = new BlobIndex();
  readonly #packs = new PackList();
  readonly #writer: PackWriter;
  readonly #writerOptions: PackWriterOptions;
  readonly #pool: CryptoPool | undefined;
  readonly #idScratch = Buffer.alloc(32);
  /** What opening (or reloadIndex) loaded: the index files listed, and those left out as superseded. */
  loadedIndex: LoadedIndex = { ids: [], superseded: [] };

  private constructor(destination: Destination, key: MasterKey, config: RepoConfig, options: OpenOptions) {
    this.destination = destination;
    this.#key = key;
    this.config = config;
    this.#pool = options.cryptoThreads === false ? undefined : CryptoPool.shared();
    const packSize = options.packSize ?? DEFAULT_PACK_SIZE;
    if (!(packSize >= 4096 && packSize <= 128 * 1024 * 1024)) throw new BackupError('E_USAGE', `pack size ${packSize} is outside 4 KiB..128 MiB`);
    this.#writerOptions = {
      key,
      destination,
      index: this.#index,
      packs: this.#packs,
      packSize,
      uploads: Math.max(1, options.uploads ?? DEFAULT_UPLOADS),
      compress: config.version >= 2,
      pool: this.#pool,
    };
    this.#writer = new PackWriter(this.#writerOptions);
  }

  /** The target pack size. */
  get packSize(): number {
    return this.#writerOptions.packSize;
  }

  /** A writer of new packs into this repository with an index of its own (prune's repacking). */
  newPackWriter(index: BlobIndex, packs: PackList): PackWriter {
    return new PackWriter({ ...this.#writerOptions, index, packs });
  }

  /** The in-memory index and pack numbers, for prune (this package only). */
  get indexState(): { index: BlobIndex; packs: PackList } {
    return { index: this.#index, packs: this.#packs };
  }

  /** Loads the index again (prune does, once it holds the exclusive lock); nothing may be pending. */
  async reloadIndex(): Promise<LoadedIndex> {
    if (this.#writer.pendingPacks || this.#writer.sealing) throw new BackupError('E_INTERNAL', 'the index cannot be reloaded while blobs are being written');
    this.#index.clear();
    this.#packs.clear();
    await this.#loadIndex(await prefetchIndex(() => listIds(this.destination, 'index'), { fetch: (id) => getBytes(this.destination, `index/${id}`) }));
    return this.loadedIndex;
  }

  async #loadIndex(prefetch: IndexPrefetch): Promise<void> {
    const source = { fetch: (id: string) => getBytes(this.destination, `index/${id}`), parse: (id: string, bytes: Buffer) => this.#parseIndex(id, bytes) };
    this.loadedIndex = await loadIndex(this.#index, this.#packs, source, prefetch);
  }

  /** Creates a repository: a key for `password`, then the config (whose presence marks a repository). */
  static async init(destination: Destination, options: InitOptions): Promise<ResticRepository> {
    if (await destination.stat(CONFIG)) {
      throw new BackupError('E_DESTINATION', `${destination.description}: already holds a repository (it has a config file)`);
    }
    const config = newRepoConfig(options.chunkerPolynomial);
    const key = MasterKey.random();
    const keyFile = await sealKeyFile(key, options.password, options.kdf ?? DEFAULT_KDF);
    await putBytes(destination, `keys/${keyFile.id}`, keyFile.bytes);
    const sealed = sealJson(key, repoConfigJson(config), false);
    await putBytes(destination, CONFIG, sealed.bytes);
    return new ResticRepository(destination, key, config, options);
  }

  /** Opens a repository with `password` and loads its index. */
  static async open(destination: Destination, options: OpenOptions): Promise<ResticRepository> {
    const where = destination.description;
    const configBytes = await getBytes(destination, CONFIG).catch((err: unknown) => {
      if ((err as BackupError).code === 'E_NOT_FOUND') {
        throw new BackupError('E_NOT_FOUND', `${where}: holds no restic repository (there is no config file)`, { cause: err });
      }
      throw err;
    });
    // The index files need no key: list and fetch the first ones while scrypt derives it.
    const prefetch = options.loadIndex === false ? undefined : prefetchIndex(() => listIds(destination, 'index'), { fetch: (id) => getBytes(destination, `index/${id}`) });
    prefetch?.catch(() => {});
    const key = await findKey(destination, options.password);
    const config = parseRepoConfig(openJson(key, configBytes, `${where}: config`, { compressed: false }), `${where}: config`);
    const repo = new ResticRepository(destination, key, config, options);
    if (prefetch) await repo.#loadIndex(await prefetch);
    return repo;
  }

  /** Adds another key (password) that opens this repository; returns its id. */
  async addKey(password: string, kdf: KdfParams = DEFAULT_KDF): Promise<string> {
    const keyFile = await sealKeyFile(this.#key, password, kdf);
    await putBytes(this.destination, `keys/${keyFile.id}`, keyFile.bytes);
    return keyFile.id;
  }

  get masterKey(): MasterKey {
    return this.#key;
  }

  /** The number of blobs in the index (stored, or in a pack being written). */
  get blobCount(): number {
    return this.#index.size;
  }

  has(type: BlobType, id: BlobId): boolean {
    return this.#index.has(type, id);
  }

  plaintextSize(type: BlobType, id: BlobId): number | undefined {
    const e = this.#index.lookup(type, id);
    return e < 0 ? undefined : this.#index.plaintextLength(e);
  }

  save(type: BlobType, id: BlobId, plaintext: Uint8Array): Promise<void> {
    if (id.length !== 64 || this.#idScratch.write(id, 'hex') !== 32) {
      return Promise.reject(new BackupError('E_INTERNAL', `not a blob id: ${JSON.stringify(id)}`));
    }
    if (this.#index.has(type, this.#idScratch)) return Promise.resolve();
    // The writer copies the id and the plaintext before its first await: the caller may reuse both.
    return this.#writer.add(type, this.#idScratch, plaintext);
  }

  /** Takes a lock on the repository in restic's protocol (exclusive for prune); release it in a `finally`. */
  lock(exclusive: boolean, options: Omit<LockOptions, 'exclusive' | 'where'> = {}): Promise<RepositoryLock> {
    return RepositoryLock.acquire(this, { ...options, exclusive, where: this.destination.description });
  }

  async load(type: BlobType, id: BlobId): Promise<Buffer> {
    const e = this.#index.lookup(type, id);
    if (e < 0) throw this.#notFound(type, id);
    let where = this.#index.location(e);
    if (where.pack === SEALING) {
      await this.#writer.sealed(e);
      where = this.#index.location(e);
    }
    const packId = this.#packs.id(where.pack);
    const name = `${type} blob ${id} in ${packId ? packKey(packId) : 'a pack being written'}`;
    const sealed =
      this.#writer.sealedInMemory(where.pack, where.offset, where.length) ??
      (await this.#readRange(packKey(packId as string), where.offset, where.length));
    if (sealed.length !== where.length) {
      throw new BackupError('E_INTEGRITY', `${name}: the pack ends before the blob (got ${sealed.length} of ${where.length} bytes)`, {
        details: { object: name },
      });
    }
    let plain = this.#key.open(sealed, name);
    if (where.uncompressedLength) plain = decompressExact(plain, where.uncompressedLength, name);
    if (createHash('sha256').update(plain).digest('hex') !== id) {
      throw new BackupError('E_INTEGRITY', `${name}: its content does not hash to its id`, { details: { object: name } });
    }
    return plain;
  }

  /** Loads blobs as a restore does: each pack read once, in ranges, in pack order (pack-reader.ts). */
  loadMany(type: BlobType, ids: Iterable<BlobId>, onBlob: BlobSink): Promise<void> {
    this.#packSource ??= this.#makePackSource();
    return loadInPackOrder(this.#packSource, type, ids, onBlob);
  }

  #packSource: PackSource | undefined;

  #makePackSource = (): PackSource => ({
    destination: this.destination,
    key: this.#key,
    pool: this.#pool,
    locate: async (type, id) => {
      const e = this.#index.lookup(type, id);
      if (e < 0) throw this.#notFound(type, id);
      await this.#writer.sealed(e);
      const where = this.#index.location(e);
      return { pack: this.#packs.id(where.pack), offset: where.offset, length: where.length, uncompressedLength: where.uncompressedLength };
    },
    load: (type, id) => this.load(type, id),
  });

  #notFound(type: BlobType, id: BlobId): BackupError {
    return new BackupError('E_NOT_FOUND', `${this.destination.description}: ${type} blob ${id} is not in the repository's index`, {
      details: { object: `${type} blob ${id}` },
    });
  }

  /** Writes the packs being filled, then index files naming every pack stored since the last flush. */
  async flush(): Promise<void> {
    const stored = await this.#writer.flush();
    if (!stored.length) return;
    try {
      for (const file of indexFiles(stored)) await this.saveJson('index', file);
    } catch (err) {
      this.#writer.unflush(stored);
      throw err;
    }
  }

  async saveJson(type: Exclude<FileType, 'keys'>, value: unknown): Promise<string> {
    const sealed = sealJson(this.#key, value, this.config.version >= 2);
    await putBytes(this.destination, `${type}/${sealed.id}`, sealed.bytes);
    return sealed.id;
  }

  async loadJson<T>(type: Exclude<FileType, 'keys'>, id: string): Promise<T> {
    const key = `${type}/${id}`;
    const bytes = await getBytes(this.destination, key);
    return openJson(this.#key, bytes, `${this.destination.description}: ${key}`, { compressed: this.config.version >= 2, id }) as T;
  }

  async list(type: FileType): Promise<string[]> {
    return listIds(this.destination, type);
  }

  async remove(type: Exclude<FileType, 'keys'>, id: string): Promise<void> {
    await this.destination.delete(`${type}/${id}`);
  }

  /** The pack id of a held blob (undefined while its pack is being written, or when not held). */
  packOf(type: BlobType, id: BlobId): string | undefined {
    const e = this.#index.lookup(type, id);
    return e < 0 ? undefined : this.#packs.id(this.#index.location(e).pack);
  }

  /** One index file, decrypted and checked. */
  async loadIndexFile(id: string): Promise<IndexJson> {
    return this.#parseIndex(id, await getBytes(this.destination, `index/${id}`));
  }

  #parseIndex(id: string, bytes: Buffer): IndexJson {
    const name = `${this.destination.description}: index/${id}`;
    return parseIndexJson(openJson(this.#key, bytes, name, { compressed: this.config.version >= 2, id }), name);
  }

  async #readRange(key: string, offset: number, length: number): Promise<Buffer> {
    return readAll(await getRange(this.destination, key, offset, length));
  }
}

/** Tries each key file with the password, as restic does; none opening is a wrong password. */
async function findKey(destination: Destination, password: string): Promise<MasterKey> {
  const ids = await listIds(destination, 'keys');
  if (!ids.length) throw new BackupError('E_INTEGRITY', `${destination.description}: the repository has no key files (keys/ is empty)`);
  const damaged: string[] = [];
  for (const id of ids) {
    const name = `keys/${id}`;
    try {
      const key = await openKeyFile(await getBytes(destination, name), password, name);
      if (key) return key;
    } catch (err) {
      // One damaged key file must not hide another that opens.
      if ((err as BackupError).code !== 'E_INTEGRITY') throw err;
      damaged.push((err as BackupError).message);
    }
  }
  const keys = `${ids.length} key${ids.length === 1 ? '' : 's'}`;
  throw new BackupError(
    'E_AUTH',
    `${destination.description}: wrong password: it opens none of the repository's ${keys}${damaged.length ? ` (damaged: ${damaged.join('; ')})` : ''}`,
  );
}

async function listIds(destination: Destination, type: FileType): Promise<string[]> {
  const prefix = `${type}/`;
  return (await destination.list(prefix))
    .map((o) => o.key.slice(prefix.length))
    .filter((name) => HEX_ID.test(name))
    .sort();
}

export async function putBytes(destination: Destination, key: string, bytes: Buffer): Promise<void> {
  await destination.put(key, Readable.from([bytes], { objectMode: false }), { size: bytes.length, sha256: sha256Hex(bytes) });
}

export async function getBytes(destination: Destination, key: string): Promise<Buffer> {
  return readAll(await destination.get(key));
}

export { readAll };

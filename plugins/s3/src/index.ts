import { Readable } from 'node:stream';
import type { ChecksumAlgorithm, S3Client, S3ClientConfig, ServerSideEncryption, StorageClass } from '@aws-sdk/client-s3';
import {
  BackupError,
  checkKey,
  defineDestination,
  z,
  type Destination,
  type ObjectInfo,
  type PutInfo,
  type SecretRegistry,
} from '@sutazai/backup-core';

const MiB = 1024 * 1024;
const MAX_PARTS = 10_000;

// The project supports Node 20; the SDK's notice about its own future Node policy would land in
// every run's stderr (and break JSON log lines).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** The AWS SDK is loaded on first use: commands that never touch the bucket start faster. */
type Sdk = typeof import('@aws-sdk/client-s3') & { Upload: typeof import('@aws-sdk/lib-storage').Upload };
let sdk: Promise<Sdk> | undefined;
function loadSdk(): Promise<Sdk> {
  sdk ??= Promise.all([import('@aws-sdk/client-s3'), import('@aws-sdk/lib-storage')]).then(([s3, storage]) => ({ ...s3, Upload: storage.Upload }));
  return sdk;
}

export const s3Options = z
  .object({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected a bucket name: 3-63 characters, a-z 0-9 . -'),
    /** Default: the AWS chain (AWS_REGION, ~/.aws/config); `us-east-1` when an `endpoint` is set. */
    region: z.string().min(1).optional(),
    /** For S3-compatible services: MinIO, Ceph, R2, B2, Wasabi. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    /** Path-style URLs (`endpoint/bucket/key`), which most self-hosted services need. */
    forcePathStyle: z.boolean().default(false),
    /** Default: the AWS credential chain (env, ~/.aws, instance or task role). */
    accessKeyId: z.string().min(1).optional(),
    secretAccessKey: z.string().min(1).optional(),
    sessionToken: z.string().min(1).optional(),
    storageClass: z
      .enum(['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'GLACIER_IR', 'DEEP_ARCHIVE', 'REDUCED_REDUNDANCY'])
      .optional(),
    serverSideEncryption: z.enum(['AES256', 'aws:kms', 'aws:kms:dsse']).optional(),
    kmsKeyId: z.string().min(1).optional(),
    /** Multipart part size; grows by itself when an object would need more than 10,000 parts. */
    partSizeMB: z.number().int().min(5).max(5120).default(8),
    /** Parts uploaded at once; memory held is about partSizeMB × queueSize. */
    queueSize: z.number().int().min(1).max(32).default(4),
    /**
     * The checksum the server verifies on every upload request. `none` for services that reject
     * the newer checksum headers (some older S3-compatible servers).
     */
    checksum: z.enum(['SHA256', 'CRC32', 'CRC32C', 'CRC64NVME', 'none']).default('SHA256'),
    /** For 3-2-1 accounting: a bucket on a server in the same building is not off site. */
    offsite: z.boolean().default(true),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (Boolean(o.accessKeyId) !== Boolean(o.secretAccessKey)) {
      ctx.addIssue({ code: 'custom', path: [o.accessKeyId ? 'secretAccessKey' : 'accessKeyId'], message: 'accessKeyId and secretAccessKey go together (or leave both out to use the AWS credential chain)' });
    }
    if (o.sessionToken && !o.accessKeyId) {
      ctx.addIssue({ code: 'custom', path: ['sessionToken'], message: 'a sessionToken needs accessKeyId and secretAccessKey' });
    }
    if (o.kmsKeyId && !o.serverSideEncryption?.startsWith('aws:kms')) {
      ctx.addIssue({ code: 'custom', path: ['kmsKeyId'], message: 'kmsKeyId needs serverSideEncryption: aws:kms (or aws:kms:dsse)' });
    }
  });

export type S3Options = z.input<typeof s3Options>;
type ParsedS3Options = z.output<typeof s3Options>;

interface AwsError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const AUTH_ERRORS = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'CredentialsProviderError']);

/** A bucket as a Destination: keys map to object keys one to one (the engine adds the prefix). */
export class S3Destination implements Destination {
  readonly description: string;
  readonly #options: ParsedS3Options;
  readonly #secrets: SecretRegistry | undefined;
  readonly #config: S3ClientConfig;
  #client: Promise<{ client: S3Client; sdk: Sdk }> | undefined;

  constructor(options: ParsedS3Options, secrets?: SecretRegistry) {
    this.#options = options;
    this.#secrets = secrets;
    this.description = `s3://${options.bucket}/`;
    for (const secret of [options.secretAccessKey, options.sessionToken]) secrets?.add(secret);
    const config: S3ClientConfig = {
      forcePathStyle: options.forcePathStyle,
      // Retries live in the engine (withRetry); the SDK's own stay short so a dead server fails fast.
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 300_000 },
      requestChecksumCalculation: options.checksum === 'none' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      responseChecksumValidation: options.checksum === 'none' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    };
    const region = options.region ?? (options.endpoint ? 'us-east-1' : undefined);
    if (region) config.region = region;
    if (options.endpoint) config.endpoint = options.endpoint;
    if (options.accessKeyId && options.secretAccessKey) {
      config.credentials = {
        accessKeyId: options.accessKeyId,
        secretAccessKey: options.secretAccessKey,
        ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
      };
    }
    this.#config = config;
  }

  /** The client, made on first use; credentials the AWS chain finds are registered as secrets. */
  #ready(): Promise<{ client: S3Client; sdk: Sdk }> {
    this.#client ??= (async () => {
      const loaded = await loadSdk();
      const client = new loaded.S3Client(this.#config);
      if (!this.#options.accessKeyId) {
        try {
          const creds = await client.config.credentials();
          this.#secrets?.add(creds.secretAccessKey);
          this.#secrets?.add(creds.sessionToken);
        } catch (err) {
          client.destroy();
          throw this.#error(err, 'finding AWS credentials (none in the rc file; the AWS chain found none either)');
        }
      }
      return { client, sdk: loaded };
    })().catch((err) => {
      this.#client = undefined;
      throw err;
    });
    return this.#client;
  }

  async put(key: string, body: Readable, info?: PutInfo): Promise<void> {
    checkKey(key);
    const { client, sdk } = await this.#ready();
    const o = this.#options;
    let partSize = o.partSizeMB * MiB;
    if (info?.size && Math.ceil(info.size / partSize) > MAX_PARTS - 100) partSize = Math.ceil(info.size / (MAX_PARTS - 100));
    const upload = new sdk.Upload({
      client,
      partSize,
      queueSize: o.queueSize,
      // A failed multipart upload is aborted, so no parts linger and nothing appears under the key.
      leavePartsOnError: false,
      params: {
        Bucket: o.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/octet-stream',
        // A known length lets the upload check that every part arrived.
        ...(info?.size !== undefined ? { ContentLength: info.size } : {}),
        ...(info?.sha256 ? { Metadata: { sha256: info.sha256 } } : {}),
        ...(o.checksum !== 'none' ? { ChecksumAlgorithm: o.checksum as ChecksumAlgorithm } : {}),
        ...(o.storageClass ? { StorageClass: o.storageClass as StorageClass } : {}),
        ...(o.serverSideEncryption ? { ServerSideEncryption: o.serverSideEncryption as ServerSideEncryption } : {}),
        ...(o.kmsKeyId ? { SSEKMSKeyId: o.kmsKeyId } : {}),
      },
    });
    try {
      await upload.done();
    } catch (err) {
      body.destroy();
      throw this.#error(err, `uploading ${key}`);
    }
  }

  async get(key: string): Promise<Readable> {
    checkKey(key);
    const { client, sdk } = await this.#ready();
    try {
      const res = await client.send(new sdk.GetObjectCommand({ Bucket: this.#options.bucket, Key: key }));
      const body = res.Body;
      if (!(body instanceof Readable)) throw new Error('the response has no readable body');
      return body;
    } catch (err) {
      if (isNotFound(err)) throw new BackupError('E_NOT_FOUND', `${this.description}${key} does not exist`, { cause: err });
      throw this.#error(err, `reading ${key}`);
    }
  }

  /** Reads only the range (an HTTP Range request). */
  async getRange(key: string, offset: number, length: number): Promise<Readable> {
    checkKey(key);
    if (length <= 0) return Readable.from([]);
    const { client, sdk } = await this.#ready();
    try {
      const res = await client.send(
        new sdk.GetObjectCommand({ Bucket: this.#options.bucket, Key: key, Range: `bytes=${offset}-${offset + length - 1}` }),
      );
      const body = res.Body;
      if (!(body instanceof Readable)) throw new Error('the response has no readable body');
      return body;
    } catch (err) {
      if (isNotFound(err)) throw new BackupError('E_NOT_FOUND', `${this.description}${key} does not exist`, { cause: err });
      // A range that starts past the end (416): no bytes, as for a local file.
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) return Readable.from([]);
      throw this.#error(err, `reading ${key}`);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const { client, sdk } = await this.#ready();
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new sdk.ListObjectsV2Command({ Bucket: this.#options.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
        );
      } catch (err) {
        throw this.#error(err, `listing ${prefix || '(everything)'}`);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(prefix)) continue;
        out.push({ key: o.Key, size: o.Size ?? 0, ...(o.LastModified ? { modified: o.LastModified } : {}) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    const { client, sdk } = await this.#ready();
    try {
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.#options.bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw this.#error(err, `deleting ${key}`);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    checkKey(key);
    const { client, sdk } = await this.#ready();
    try {
      const res = await client.send(new sdk.HeadObjectCommand({ Bucket: this.#options.bucket, Key: key }));
      return { key, size: res.ContentLength ?? 0, ...(res.LastModified ? { modified: res.LastModified } : {}) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.#error(err, `checking ${key}`);
    }
  }

  async close(): Promise<void> {
    const ready = this.#client;
    this.#client = undefined;
    (await ready?.catch(() => undefined))?.client.destroy();
  }

  #error(err: unknown, doing: string): BackupError {
    const e = err as AwsError;
    const status = e.$metadata?.httpStatusCode;
    const name = e.name && e.name !== 'Error' ? e.name : e.code;
    let message = `${this.description}: ${doing}: ${name ? `${name}: ` : ''}${e.message ?? String(err)}${status ? ` (HTTP ${status})` : ''}`;
    if (name === 'NoSuchBucket') message += `: create the bucket ${this.#options.bucket} first`;
    const auth = (name && AUTH_ERRORS.has(name)) || status === 401 || status === 403;
    return new BackupError(auth ? 'E_AUTH' : 'E_DESTINATION', message, { cause: err });
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as AwsError;
  if (e.name === 'NoSuchBucket') return false;
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/** `use: s3` — a bucket on AWS S3 or an S3-compatible service. */
export default defineDestination({
  name: 's3',
  options: s3Options,
  traits: (o) => ({ medium: 'object-store', offsite: o.offsite }),
  create(options, ctx) {
    return new S3Destination(options, ctx.secrets);
  },
});

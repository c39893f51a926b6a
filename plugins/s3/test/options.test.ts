import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { isBackupError } from '@sutazai/backup-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3, type S3Server } from '../../../test/helpers/servers.js';
import { S3Destination, s3Options, type S3Options } from '../src/index.js';

let server: S3Server;
beforeAll(async () => {
  server = await startS3({ buckets: ['options-test'] });
});
afterAll(async () => {
  await server?.stop();
});

const make = (o: Partial<S3Options> = {}) =>
  new S3Destination(
    s3Options.parse({ bucket: 'options-test', endpoint: server.endpoint, forcePathStyle: true, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, partSizeMB: 5, ...o }),
  );

describe('s3 options against s3rver', () => {
  // s3rver accepts and ignores checksum headers; these show that each setting uploads, single-part
  // and multipart, against a server of that kind.
  for (const checksum of ['SHA256', 'CRC32', 'CRC32C', 'none'] as const) {
    it(`checksum: ${checksum} uploads single-part and multipart objects intact`, async () => {
      const d = make({ checksum });
      for (const size of [1000, 11 * 1024 * 1024]) {
        const body = randomBytes(size);
        const key = `checksum-${checksum}/${size}`;
        await d.put(key, Readable.from([body]), { size });
        const got: Buffer[] = [];
        for await (const c of await d.get(key)) got.push(c as Buffer);
        expect(Buffer.concat(got).equals(body)).toBe(true);
      }
      await d.close();
    });
  }

  // s3rver checks the access key id but not V4 signatures, so a wrong secret key cannot be shown here.
  it('an unknown access key is E_AUTH, not retried, and the secret is not in the message', async () => {
    const d = make({ accessKeyId: 'NOT-A-KEY', secretAccessKey: 'wrong-secret-value' });
    const err = await d.put('x', Readable.from([Buffer.from('x')])).then(
      () => undefined,
      (e: Error) => e,
    );
    await d.close();
    expect(err && isBackupError(err) && err.code).toBe('E_AUTH');
    expect(err!.message).toMatch(/InvalidAccessKeyId.*HTTP 403/);
    expect(err!.message).not.toContain('wrong-secret-value');
  });

  it('a missing bucket says to create it', async () => {
    const d = make({ bucket: 'no-such-bucket' });
    await expect(d.list('')).rejects.toThrow(/NoSuchBucket.*create the bucket no-such-bucket first/);
    await d.close();
  });

  it('checks option combinations at load time', () => {
    expect(() => s3Options.parse({ bucket: 'b1x', accessKeyId: 'AKIA' })).toThrow(/accessKeyId and secretAccessKey go together/);
    expect(() => s3Options.parse({ bucket: 'b1x', kmsKeyId: 'k' })).toThrow(/kmsKeyId needs serverSideEncryption/);
    expect(() => s3Options.parse({ bucket: 'B' })).toThrow(/bucket name/);
  });
});

import { runDestinationConformance } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startS3, type S3Server } from '../../../test/helpers/servers.js';
import { S3Destination, s3Options } from '../src/index.js';

const MiB = 1024 * 1024;
let server: S3Server;
let buckets = 0;

beforeAll(async () => {
  server = await startS3();
});
afterAll(async () => {
  await server?.stop();
});

describe('s3 destination (s3rver on loopback): Destination conformance', () => {
  const checks = runDestinationConformance({
    create: async () => {
      const bucket = `conformance-${++buckets}`;
      await server.createBucket(bucket);
      return new S3Destination(
        s3Options.parse({
          bucket,
          endpoint: server.endpoint,
          forcePathStyle: true,
          accessKeyId: server.accessKeyId,
          secretAccessKey: server.secretAccessKey,
          partSizeMB: 5,
        }),
      );
    },
    largeObjectBytes: Number(process.env.SUTAZAI_CONFORMANCE_LARGE_MB ?? 300) * MiB,
  });
  for (const c of checks) it(c.name, c.run);
});

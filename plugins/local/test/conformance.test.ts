import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDestinationConformance } from '@sutazai/backup-testkit';
import { afterAll, describe, it } from 'vitest';
import { MountCheckedDestination } from '../src/index.js';

const MiB = 1024 * 1024;
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
});

describe('local destination: Destination conformance', () => {
  const checks = runDestinationConformance({
    create: async () => {
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-local-conf-'));
      dirs.push(dir);
      return new MountCheckedDestination(path.join(dir, 'drive'), false);
    },
    largeObjectBytes: Number(process.env.SUTAZAI_CONFORMANCE_LARGE_MB ?? 300) * MiB,
  });
  for (const c of checks) it(c.name, c.run);
});

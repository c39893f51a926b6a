/**
 * The testkit's stream check on the files source: a file of 0 B to 1 MiB, backed up many times
 * beside a busy CPU, restores byte for byte under its absolute path.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import { sourceStreamChecks } from '@sutazai/backup-testkit';

describe('files source, a file of 0 B to 1 MiB (testkit)', () => {
  const checks = sourceStreamChecks({
    use: 'files',
    runs: 13,
    fixture: async ({ data, dir }) => {
      const root = path.join(dir, 'config');
      await fsp.mkdir(root);
      await fsp.writeFile(path.join(root, 'payload.bin'), data);
      // A tree restores with its absolute paths under DIR/<source>/.
      return { options: { paths: [root] }, expected: { [path.join(root.slice(1), 'payload.bin')]: data } };
    },
  });
  // Many backups beside a busy CPU: more than the default time on a loaded machine.
  for (const check of checks) it(check.name, check.run, 600_000);
});

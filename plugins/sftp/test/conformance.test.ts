import { runDestinationConformance } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startSshd, type SshServer } from '../../../test/helpers/servers.js';
import { SftpDestination, sftpOptions } from '../src/index.js';

const MiB = 1024 * 1024;
let server: SshServer;
let folders = 0;

beforeAll(async () => {
  server = await startSshd();
});
afterAll(async () => {
  await server?.stop();
});

describe('sftp destination (OpenSSH sshd on loopback): Destination conformance', () => {
  const checks = runDestinationConformance({
    create: () =>
      new SftpDestination(
        sftpOptions.parse({
          host: server.host,
          port: server.port,
          username: server.user,
          privateKey: server.privateKeyPath,
          knownHosts: server.knownHostsPath,
          path: `${server.homeDir}/conformance-${++folders}`,
        }),
        { configDir: server.dir },
      ),
    // Encrypted SSH on two shared cores moves ~35 MB/s: 100 MiB by default, SUTAZAI_CONFORMANCE_LARGE_MB=300 for the full size.
    largeObjectBytes: Number(process.env.SUTAZAI_CONFORMANCE_LARGE_MB ?? 100) * MiB,
  });
  for (const c of checks) it(c.name, c.run);
});

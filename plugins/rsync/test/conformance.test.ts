import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDestinationConformance, type ConformanceOptions } from '@sutazai/backup-testkit';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startSshd, type SshServer } from '../../../test/helpers/servers.js';
import { RsyncDestination, rsyncOptions } from '../src/index.js';

const MiB = 1024 * 1024;
const largeObjectBytes = Number(process.env.SUTAZAI_CONFORMANCE_LARGE_MB ?? 100) * MiB;
let server: SshServer;
let scratch: string;
let folders = 0;
let remoteUser: { uid: number; gid: number };

beforeAll(async () => {
  // A login whose shell starts fast (/bin/sh): every rsync and ssh command here starts one.
  server = await startSshd({ user: 'sutazai-test' });
  const st = await fsp.stat(server.homeDir);
  remoteUser = { uid: st.uid, gid: st.gid };
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-rsync-conf-'));
});
afterAll(async () => {
  await server?.stop();
  if (scratch) await fsp.rm(scratch, { recursive: true, force: true });
});

/** One rsync process per put makes thousands of puts slow: the listing check writes its files straight into the folder. */
function seedInto(root: () => string, owner?: () => { uid: number; gid: number }): ConformanceOptions['seed'] {
  return async (_d, objects) => {
    for (const o of objects) {
      const file = path.join(root(), o.key);
      const made = await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.writeFile(file, o.body);
      const ids = owner?.();
      if (ids) {
        await fsp.chown(file, ids.uid, ids.gid);
        for (let dir = path.dirname(file); made && dir.length >= made.length; dir = path.dirname(dir)) await fsp.chown(dir, ids.uid, ids.gid);
      }
    }
  };
}

describe('rsync destination to a local folder: Destination conformance', () => {
  let current = '';
  const checks = runDestinationConformance({
    create: () => {
      current = path.join(scratch, `local-${++folders}`);
      return new RsyncDestination(rsyncOptions.parse({ target: current }), { configDir: scratch, backupRoot: scratch });
    },
    seed: seedInto(() => current),
    largeObjectBytes,
  });
  for (const c of checks) it(c.name, c.run);
});

describe('rsync destination over ssh (OpenSSH sshd on loopback): Destination conformance', () => {
  let current = '';
  const checks = runDestinationConformance({
    create: () => {
      current = path.join(server.homeDir, `conformance-${++folders}`);
      return new RsyncDestination(
        rsyncOptions.parse({
          target: `${server.user}@${server.host}:${current}`,
          port: server.port,
          privateKey: server.privateKeyPath,
          knownHosts: server.knownHostsPath,
        }),
        { configDir: server.dir, backupRoot: scratch },
      );
    },
    seed: seedInto(() => current, () => remoteUser),
    largeObjectBytes,
  });
  for (const c of checks) it(c.name, c.run);
});

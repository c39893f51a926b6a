#!/usr/bin/env node
// One run of the restic-format content layer, for bench/restic-archive.mjs to time and measure
// (peak RSS) as a process of its own. The password comes from RESTIC_PASSWORD.
//   backup <repo> <source folder> [--parent]   archive as source `files` into a local repository
//   restore <repo> <target>                     restore the newest snapshot
// Prints one line of JSON: the archiver's stats, or the restore's.
import { LocalDestination } from '../../packages/core/dist/destination.js';
import { Archiver } from '../../packages/core/dist/restic/archiver.js';
import { FastCdcChunker } from '../../packages/core/dist/restic/fastcdc.js';
import { ResticRepository } from '../../packages/core/dist/restic/repository.js';
import { restoreSnapshot } from '../../packages/core/dist/restic/restorer.js';
import { newSnapshot } from '../../packages/core/dist/restic/snapshot.js';

const [command, repoDir, folder, ...flags] = process.argv.slice(2);
const password = process.env.RESTIC_PASSWORD;
if (!password) throw new Error('set RESTIC_PASSWORD');
const destination = new LocalDestination(repoDir);

async function newest(repo) {
  let best;
  for (const id of await repo.list('snapshots')) {
    const s = await repo.loadJson('snapshots', id);
    if (!best || s.time > best.time) best = { ...s, id };
  }
  return best;
}

if (command === 'backup') {
  const repo = await ResticRepository.open(destination, { password }).catch(async (err) => {
    if (err.code !== 'E_NOT_FOUND') throw err;
    return ResticRepository.init(destination, { password });
  });
  const parent = flags.includes('--parent') ? await newest(repo) : undefined;
  const archiver = new Archiver({ store: repo, chunker: () => new FastCdcChunker(repo.config.chunkerPolynomial), parentTree: parent?.tree });
  await archiver.addTree('files', [folder]);
  const tree = await archiver.finish();
  await repo.flush();
  await repo.saveJson('snapshots', newSnapshot({ tree, paths: ['/files'], parent: parent?.id, timeNs: archiver.timeNs }));
  console.log(JSON.stringify(archiver.stats));
} else if (command === 'restore') {
  const repo = await ResticRepository.open(destination, { password });
  const snapshot = await newest(repo);
  console.log(JSON.stringify(await restoreSnapshot({ store: repo, rootTree: snapshot.tree, target: folder, label: 'bench' })));
} else {
  throw new Error(`unknown command ${command}`);
}

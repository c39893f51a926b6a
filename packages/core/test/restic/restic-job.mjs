#!/usr/bin/env node
// One restic-format job as a process of its own, for the crash tests (kill -9 at a random
// moment) and the lock tests: it runs the compiled modules (packages/core/dist), as the tool does.
//   backup <repo> <folder>            a snapshot of <folder> as source `files`, the newest snapshot as parent
//   prune <repo> [snapshot ids...]    forget the given snapshots and collect the garbage
// The password comes from RESTIC_PASSWORD. Prints `step <name>` as a prune begins each step,
// and one line of JSON at the end.
import { LocalDestination } from '../../dist/destination.js';
import { Archiver } from '../../dist/restic/archiver.js';
import { FastCdcChunker } from '../../dist/restic/fastcdc.js';
import { prune } from '../../dist/restic/prune.js';
import { ResticRepository } from '../../dist/restic/repository.js';
import { newSnapshot } from '../../dist/restic/snapshot.js';

const [command, repoDir, ...rest] = process.argv.slice(2);
const password = process.env.RESTIC_PASSWORD;
if (!password) throw new Error('set RESTIC_PASSWORD');
const repo = await ResticRepository.open(new LocalDestination(repoDir), { password, packSize: Number(process.env.PACK_SIZE || 1024 * 1024) });
const lockOptions = { waitBeforeCheckMs: 20 };

if (command === 'backup') {
  const lock = await repo.lock(false, lockOptions);
  try {
    let parent;
    for (const id of await repo.list('snapshots')) {
      const s = await repo.loadJson('snapshots', id);
      if (!parent || s.time > parent.time) parent = { ...s, id };
    }
    const archiver = new Archiver({ store: repo, chunker: () => new FastCdcChunker(repo.config.chunkerPolynomial), parentTree: parent?.tree });
    await archiver.addTree('files', [rest[0]]);
    const tree = await archiver.finish();
    await repo.flush();
    lock.assertHeld();
    const id = await repo.saveJson('snapshots', newSnapshot({ tree, paths: ['/files'], parent: parent?.id, timeNs: archiver.timeNs }));
    console.log(JSON.stringify({ id, ...archiver.stats }));
  } finally {
    await lock.release();
  }
} else if (command === 'prune') {
  const result = await prune(repo, { forget: rest, lock: lockOptions, onStep: (step) => console.log(`step ${step}`) });
  console.log(JSON.stringify(result));
} else {
  throw new Error(`unknown command ${command}`);
}

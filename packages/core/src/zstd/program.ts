import { spawn, spawnSync } from 'node:child_process';
import { Duplex, PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupError } from '../errors.js';

const PROGRAM = process.env.SUTAZAI_BACKUP_ZSTD_PROGRAM || 'zstd';
let found: boolean | undefined;

/** Whether the `zstd` program runs here (checked once). */
export function zstdProgramFound(): boolean {
  if (found === undefined) found = spawnSync(PROGRAM, ['--version'], { stdio: 'ignore' }).status === 0;
  return found;
}

/**
 * The `zstd` program as a stream stage: bytes in on its stdin, out of its stdout; a non-zero exit
 * (a corrupt or cut frame when decoding) fails the stream with what it printed.
 */
export function zstdProgramStream(args: string[]): Duplex {
  const child = spawn(PROGRAM, ['-q', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  const output = new PassThrough({ highWaterMark: 1024 * 1024 });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new BackupError('E_INTEGRITY', `zstd ${args.join(' ')}: ${stderr.trim() || `exited with ${code ?? signal}`}`));
    });
  });
  const stage = Duplex.from({ writable: child.stdin as Writable, readable: output as Readable });
  // The output ends only once the program has exited well, so a failure cannot pass for the end.
  Promise.all([pipeline(child.stdout, output, { end: false }), exited]).then(
    () => output.end(),
    (err: Error) => {
      child.kill();
      stage.destroy(err);
    },
  );
  stage.once('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return stage;
}

/** One buffer through the program. */
export async function zstdProgramBuffer(args: string[], data: Uint8Array): Promise<Buffer> {
  const stage = zstdProgramStream(args);
  const parts: Buffer[] = [];
  stage.on('data', (d: Buffer) => parts.push(d));
  await new Promise<void>((resolve, reject) => {
    stage.once('error', reject);
    stage.once('end', resolve);
    stage.end(data);
  });
  return Buffer.concat(parts);
}

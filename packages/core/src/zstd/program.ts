import type { Duplex } from 'node:stream';
import { runChildSync } from '../child/launch.js';
import { BackupError } from '../errors.js';
import { ProgramStream } from '../pipeline/program-stream.js';

const PROGRAM = process.env.SUTAZAI_BACKUP_ZSTD_PROGRAM || 'zstd';
let found: boolean | undefined;

/** Whether the `zstd` program runs here (checked once). */
export function zstdProgramFound(): boolean {
  if (found === undefined) found = runChildSync(PROGRAM, ['--version']) === 0;
  return found;
}

/**
 * The `zstd` program as a stream stage: bytes in on its stdin, out of its stdout; a non-zero exit
 * (a corrupt or cut frame when decoding) fails the stream with what it printed, and the output
 * ends only once the program has exited well, so a failure cannot pass for the end.
 */
export function zstdProgramStream(args: string[]): Duplex {
  return new ProgramStream({
    command: PROGRAM,
    args: ['-q', ...args],
    env: {},
    check: (o) => (o.code === 0 ? undefined : new BackupError('E_INTEGRITY', `zstd ${args.join(' ')}: ${o.stderr.trim() || `exited with ${o.code ?? o.signal}`}`)),
  });
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

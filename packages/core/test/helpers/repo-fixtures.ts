/**
 * Real repositories in temp folders for the core's unit tests: a LocalDestination that writes
 * down what it was asked to do (what a user sees in an S3 access log or an SFTP server's log), and
 * a logger whose lines the test reads back.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { LocalDestination, type ObjectInfo } from '../../src/destination.js';
import { createLogger, type Logger } from '../../src/log.js';

/**
 * A folder destination that records every put (with the size it was told) and delete, in order. Its listing comes back in
 * reverse order: the Destination contract allows any order (an SFTP server's readdir, an object
 * store's pages), so nothing may rely on the order a local folder happens to give.
 */
export class RecordingDestination extends LocalDestination {
  readonly calls: string[] = [];

  /** Records `put <key> (<size> bytes)`: an object store needs the size to stream an upload. */
  override async put(...args: Parameters<LocalDestination['put']>): Promise<void> {
    this.calls.push(`put ${args[0]} (${args[2]?.size ?? '?'} bytes)`);
    return super.put(...args);
  }

  override async delete(key: string): Promise<void> {
    this.calls.push(`delete ${key}`);
    return super.delete(key);
  }

  override async list(prefix: string): Promise<ObjectInfo[]> {
    return (await super.list(prefix)).sort((a, b) => (a.key < b.key ? 1 : -1));
  }
}

export interface LogLine {
  level: string;
  msg: string;
}

/** A logger at `debug` whose lines (level and message) land in `lines`. */
export function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const text of chunk.toString().split('\n').filter(Boolean)) {
        const { level, msg } = JSON.parse(text) as LogLine;
        lines.push({ level, msg });
      }
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', json: true, stream }), lines };
}

/** Writes `snapshots/<id>/<name>` files under a repository folder. */
export async function writeFolder(root: string, id: string, files: Record<string, string>): Promise<void> {
  await fsp.mkdir(path.join(root, 'snapshots', id), { recursive: true });
  for (const [name, content] of Object.entries(files)) await fsp.writeFile(path.join(root, 'snapshots', id, name), content);
}

/**
 * Log lines carry sd-daemon priority prefixes when stderr is systemd's journal stream
 * (JOURNAL_STREAM names its device and inode), so journald files each line at its level.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';

const LOG_MODULE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/log.js');

function collect(): { stream: NodeJS.WritableStream; lines: string[] } {
  const lines: string[] = [];
  return { lines, stream: { write: (s: string) => lines.push(...s.split('\n').filter(Boolean)) } as unknown as NodeJS.WritableStream };
}

describe('journald priorities', () => {
  it('each level gets its prefix, every line of a message too', () => {
    const { stream, lines } = collect();
    const log = createLogger({ stream, json: false, journal: true, level: 'debug' });
    log.error('disk full');
    log.warn('slow');
    log.info('two\nlines');
    log.debug('detail');
    expect(lines.map((l) => l.replace(/^(<\d>)\S+ /, '$1'))).toEqual(['<3>error disk full', '<4>warn  slow', '<6>info  two', '<6>lines', '<7>debug detail']);
  });

  it('a process whose stderr is the stream JOURNAL_STREAM names prefixes; one whose stderr was redirected does not', () => {
    const script = `const { createLogger } = await import(${JSON.stringify(LOG_MODULE)}); const log = createLogger({ json: true }); log.error('boom'); log.info('fine');`;
    // The shell reads the device and inode of the stderr it gives node, as systemd does for its journal stream.
    const run = (journalStream: string) =>
      spawnSync('sh', ['-c', `JOURNAL_STREAM=${journalStream} exec "$0" --input-type=module -e "$1"`, process.execPath, script], { encoding: 'utf8' }).stderr.trim().split('\n');
    const connected = run('$(stat -L -c %d:%i /proc/self/fd/2)');
    expect(connected.map((l) => l.slice(0, 3))).toEqual(['<3>', '<6>']);
    expect(JSON.parse(connected[0]!.slice(3))).toMatchObject({ level: 'error', msg: 'boom' });
    expect(run('1:2').map((l) => l.slice(0, 1))).toEqual(['{', '{']);
    expect(run('').map((l) => l.slice(0, 1))).toEqual(['{', '{']);
  });
});

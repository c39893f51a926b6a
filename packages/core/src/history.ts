import path from 'node:path';
import { ownFolder } from './backup-root.js';
import { BackupError } from './errors.js';
import { openPrivate, readOwnFile } from './fs.js';

/** One line of the run history: what `status` and health checks read. */
export interface HistoryRecord {
  kind: 'run' | 'verify' | 'restore-test' | 'prune' | 'forget' | 'replicate';
  status: 'success' | 'failed';
  startedAt: string;
  finishedAt: string;
  profile?: string;
  snapshot?: string | null;
  /** Where the operation looked (backupRoot or a destination's name). */
  repository?: string;
  bytes?: number;
  errors?: { stage: string; plugin?: string; code: string; message: string }[];
  destinations?: { name: string; status: 'ok' | 'failed'; error?: string }[];
  [extra: string]: unknown;
}

const MAX_LINES = 5000;

/** An append-only JSON-lines log of runs in `<backupRoot>/state/history.jsonl`. */
export class RunHistory {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'history.jsonl');
  }

  async append(record: HistoryRecord): Promise<void> {
    // Never through a link planted at state/ or at the file: O_NOFOLLOW, after checking backupRoot.
    await ownFolder(path.dirname(path.dirname(this.file)), path.basename(path.dirname(this.file)));
    const handle = await openPrivate(this.file, 'a');
    try {
      await handle.appendFile(JSON.stringify(record) + '\n');
    } finally {
      await handle.close();
    }
  }

  /** Records newest last; lines that do not parse (a torn last line after a crash) are skipped. */
  async read(): Promise<HistoryRecord[]> {
    let text: string;
    try {
      text = await readOwnFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      if (err instanceof BackupError) throw err;
      throw new BackupError('E_STATE', `cannot read the run history ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    const lines = text.split('\n').filter(Boolean).slice(-MAX_LINES);
    const out: HistoryRecord[] = [];
    for (const line of lines) {
      try {
        out.push(JSON.parse(line) as HistoryRecord);
      } catch {
        // skip
      }
    }
    return out;
  }

  async last(kind: HistoryRecord['kind'], filter: (r: HistoryRecord) => boolean = () => true): Promise<HistoryRecord | undefined> {
    const records = await this.read();
    for (let i = records.length - 1; i >= 0; i--) if (records[i]!.kind === kind && filter(records[i]!)) return records[i];
    return undefined;
  }
}

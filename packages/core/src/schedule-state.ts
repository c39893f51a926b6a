import path from 'node:path';
import { ownFolder } from './backup-root.js';
import { readOwnFile, writeFileAtomic } from './fs.js';

/** What the daemon remembers of one scheduled job between its starts. */
export interface ScheduledJobState {
  /** Every fire time up to this one has been served (a run started at or after it). */
  servedUntil: string;
  lastStartedAt?: string;
  lastFinishedAt?: string;
  lastStatus?: 'success' | 'failed';
  /** Whether the last run was a catch-up at start. */
  lastCatchUp?: boolean;
}

export interface ScheduleState {
  jobs: Record<string, ScheduledJobState>;
}

/**
 * `<backupRoot>/state/schedule.json`: when each scheduled job last ran, so that a daemon that was
 * down runs at its start what it missed. Read and written like the tool's other state files:
 * never through a link, replaced atomically.
 */
export class ScheduleStateStore {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'schedule.json');
  }

  /** The saved state; a missing file is an empty one, a damaged one is reported through `onDamaged` and read as empty. */
  async read(onDamaged?: (message: string) => void): Promise<ScheduleState> {
    let text: string;
    try {
      text = await readOwnFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { jobs: {} };
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as Partial<ScheduleState>;
      const jobs: Record<string, ScheduledJobState> = {};
      for (const [name, job] of Object.entries(parsed.jobs ?? {})) {
        if (job && typeof job.servedUntil === 'string' && !Number.isNaN(Date.parse(job.servedUntil))) jobs[name] = job;
      }
      return { jobs };
    } catch (err) {
      // Losing it costs at most one catch-up run not made: start over rather than stop scheduling.
      onDamaged?.(`${this.file} is damaged (${(err as Error).message}): missed runs before now are not caught up`);
      return { jobs: {} };
    }
  }

  async write(state: ScheduleState): Promise<void> {
    await ownFolder(path.dirname(path.dirname(this.file)), path.basename(path.dirname(this.file)));
    await writeFileAtomic(this.file, JSON.stringify(state, null, 2) + '\n');
  }
}

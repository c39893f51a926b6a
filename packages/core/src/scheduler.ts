import type { Logger } from './log.js';
import { nextFireTime, parseCron, type CronSchedule, type ScheduleZone } from './schedule.js';
import type { ScheduledJobState, ScheduleState } from './schedule-state.js';

/** Something the daemon runs at its cron times: a profile's run, the restore test, the health check. */
export interface ScheduledJob {
  /** Unique among the jobs: the profile's name, `restore-test`, `health`. */
  name: string;
  schedule: string;
}

/** One start of a job. */
export interface JobStart {
  job: ScheduledJob;
  /** The fire time it serves (for a catch-up: the time the daemon started). */
  slot: Date;
  /** Run at start because the daemon was down at one of its fire times. */
  catchUp: boolean;
}

export interface JobOutcome {
  /** `stopped`: the daemon was stopped during the run; its slot is caught up at the next start. */
  status: 'success' | 'failed' | 'stopped';
  detail?: string;
}

/** The daemon's time: the system clock, or a simulated one in tests (no real waiting). */
export interface SchedulerClock {
  now(): Date;
  /** Resolves at `until` (or earlier: the caller looks at the time again), or when `signal` aborts. */
  sleepUntil(until: Date, signal: AbortSignal): Promise<void>;
}

export interface ScheduleStore {
  read(onDamaged?: (message: string) => void): Promise<ScheduleState>;
  write(state: ScheduleState): Promise<void>;
}

export interface SchedulerOptions {
  jobs: readonly ScheduledJob[];
  store: ScheduleStore;
  /** Runs one job to its end; a rejection counts as a failed run, and the daemon goes on. */
  run: (start: JobStart, signal: AbortSignal) => Promise<JobOutcome>;
  logger: Logger;
  clock?: SchedulerClock;
  zone?: ScheduleZone;
}

/** The longest real sleep: the loop looks at the clock again at least this often (clock changes, suspend). */
const MAX_SLEEP_MS = 60_000;

/** Real time, as `now` tells it (the engine's clock: the system's, or one shifted for rehearsals). */
export function realClock(now: () => Date = () => new Date()): SchedulerClock {
  return {
    now,
    sleepUntil: (until, signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, Math.min(until.getTime() - now().getTime(), MAX_SLEEP_MS)));
        signal.addEventListener('abort', done, { once: true });
      }),
  };
}

interface Pending extends JobStart {
  order: number;
}

/**
 * Runs jobs at their cron times, one at a time. A job that comes due while another runs waits in
 * a queue (in the order of the times it was due) instead of being dropped; a job already waiting
 * is not queued twice (coalesced). At start, each job that missed a fire time while the daemon
 * was down (after `servedUntil` in the store) runs once. Resolves when `signal` aborts, after
 * the job that runs then has ended.
 */
export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #clock: SchedulerClock;
  readonly #zone: ScheduleZone;
  readonly #schedules = new Map<string, CronSchedule>();
  readonly #next = new Map<string, Date>();
  readonly #pending: Pending[] = [];
  #state: ScheduleState = { jobs: {} };

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? realClock();
    this.#zone = options.zone ?? 'local';
    for (const job of options.jobs) this.#schedules.set(job.name, parseCron(job.schedule));
  }

  /** When each job fires next (for logs and tests). */
  nextTimes(): ReadonlyMap<string, Date> {
    return this.#next;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { logger } = this.#options;
    await this.start();
    while (!signal.aborted) {
      this.enqueueDue();
      const head = this.#pending.shift();
      if (head) {
        await this.runOne(head, signal);
        continue;
      }
      const [name, at] = [...this.#next.entries()].sort((a, b) => a[1].getTime() - b[1].getTime())[0] ?? [];
      if (!name || !at) return void logger.warn('no job has a schedule: nothing to do');
      await this.#clock.sleepUntil(at, signal);
    }
  }

  /** Loads the saved state, queues the catch-up runs, and records a first start. */
  private async start(): Promise<void> {
    const { jobs, store, logger } = this.#options;
    this.#state = await store.read((message) => logger.warn(message));
    const now = this.#clock.now();
    let order = 0;
    for (const job of jobs) {
      const saved = this.#state.jobs[job.name];
      const schedule = this.#schedules.get(job.name)!;
      if (!saved) {
        // A job never seen before: nothing was missed; from now on, a fire time while down is.
        this.#state.jobs[job.name] = { servedUntil: now.toISOString() };
      } else {
        const missed = nextFireTime(schedule, new Date(saved.servedUntil), this.#zone);
        if (missed.getTime() <= now.getTime()) {
          logger.info(`${job.name}: missed its run at ${missed.toISOString()} while the daemon was down: running it now`, { job: job.name });
          this.#pending.push({ job, slot: now, catchUp: true, order: order++ });
        }
      }
      this.#next.set(job.name, nextFireTime(schedule, now, this.#zone));
    }
    await store.write(this.#state);
    for (const [name, at] of this.#next) logger.info(`${name}: next run at ${at.toISOString()}`, { job: name });
  }

  /** Queues every job whose fire time has come; one already waiting stays queued once. */
  private enqueueDue(): void {
    const now = this.#clock.now();
    for (const job of this.#options.jobs) {
      const at = this.#next.get(job.name)!;
      if (at.getTime() > now.getTime()) continue;
      this.#next.set(job.name, nextFireTime(this.#schedules.get(job.name)!, now, this.#zone));
      if (this.#pending.some((p) => p.job.name === job.name)) {
        this.#options.logger.info(`${job.name}: due at ${at.toISOString()} and already waiting: runs once`, { job: job.name });
        continue;
      }
      this.#pending.push({ job, slot: at, catchUp: false, order: this.#options.jobs.indexOf(job) });
      if (this.#pending.length > 1 || now.getTime() - at.getTime() >= 60_000) {
        this.#options.logger.info(`${job.name}: due at ${at.toISOString()}, queued`, { job: job.name });
      }
    }
    this.#pending.sort((a, b) => a.slot.getTime() - b.slot.getTime() || a.order - b.order);
  }

  private async runOne(start: JobStart, signal: AbortSignal): Promise<void> {
    const { logger, store } = this.#options;
    const name = start.job.name;
    const startedAt = this.#clock.now();
    let outcome: JobOutcome;
    try {
      outcome = await this.#options.run(start, signal);
    } catch (err) {
      outcome = { status: 'failed', detail: (err as Error).message };
    }
    const finishedAt = this.#clock.now();
    const line = `${name}: ${outcome.status}${outcome.detail ? `: ${outcome.detail}` : ''}`;
    if (outcome.status === 'success') logger.info(line, { job: name });
    else logger[outcome.status === 'failed' ? 'error' : 'warn'](line, { job: name });
    // A run stopped with the daemon did not serve its slot: the next start catches it up.
    if (outcome.status === 'stopped') return;
    const record: ScheduledJobState = {
      servedUntil: startedAt.toISOString(),
      lastStartedAt: startedAt.toISOString(),
      lastFinishedAt: finishedAt.toISOString(),
      lastStatus: outcome.status,
      lastCatchUp: start.catchUp,
    };
    this.#state.jobs[name] = record;
    await store.write(this.#state).catch((err: Error) => logger.warn(`could not save the schedule state: ${err.message}`));
  }
}

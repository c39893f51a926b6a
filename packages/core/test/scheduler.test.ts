/**
 * The daemon's scheduler with a simulated clock (no real waiting): the three seed profiles over a
 * month, a weekly that comes due during a long daily, coalescing, catch-up after an outage,
 * a failing run, and a stop during a run. The state file is the real one, in a temporary backupRoot.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log.js';
import { ScheduleStateStore } from '../src/schedule-state.js';
import { Scheduler, type JobOutcome, type JobStart, type SchedulerClock } from '../src/scheduler.js';

const SEED = [
  { name: 'daily', schedule: '0 2 * * *' },
  { name: 'weekly', schedule: '0 3 * * 0' },
  { name: 'monthly', schedule: '0 4 1 * *' },
];
const MIN = 60_000;
const HOUR = 60 * MIN;

let root: string;
let store: ScheduleStateStore;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sutazai-scheduler-'));
  store = new ScheduleStateStore(path.join(root, 'state'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** A clock that jumps to whatever the scheduler waits for, and stops the daemon at `end`. */
class SimulatedClock implements SchedulerClock {
  t: number;
  readonly stop = new AbortController();
  constructor(
    start: string,
    readonly end: number,
  ) {
    this.t = Date.parse(start);
  }
  now = () => new Date(this.t);
  async sleepUntil(until: Date): Promise<void> {
    this.t = Math.max(this.t, until.getTime());
    if (this.t >= this.end) this.stop.abort();
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

interface Started {
  job: string;
  at: string;
  slot: string;
  catchUp: boolean;
}

/** Runs a scheduler from `start` until `end` (simulated); each job takes `duration(job)`. */
async function simulate(
  start: string,
  end: string,
  duration: (s: JobStart, clock: SimulatedClock) => number | JobOutcome = () => 10 * MIN,
  jobs: { name: string; schedule: string }[] = SEED,
): Promise<Started[]> {
  const clock = new SimulatedClock(start, Date.parse(end));
  const started: Started[] = [];
  const scheduler = new Scheduler({
    jobs,
    store,
    clock,
    zone: 'utc',
    logger: silentLogger(),
    run: async (s) => {
      started.push({ job: s.job.name, at: clock.now().toISOString(), slot: s.slot.toISOString(), catchUp: s.catchUp });
      const d = duration(s, clock);
      if (typeof d !== 'number') return d;
      clock.advance(d);
      if (clock.t >= clock.end) clock.stop.abort();
      return { status: 'success' };
    },
  });
  await scheduler.run(clock.stop.signal);
  return started;
}

const at = (list: Started[], job: string) => list.filter((s) => s.job === job).map((s) => s.at);

describe('the scheduler', () => {
  it('fires the three seed profiles at the right minutes over a simulated month', async () => {
    // November 2026: the 1st is a Sunday, so all three fire that morning, an hour apart.
    const started = await simulate('2026-11-01T00:00:00Z', '2026-12-01T00:00:00Z');
    expect(at(started, 'daily')).toEqual(Array.from({ length: 30 }, (_, i) => `2026-11-${String(i + 1).padStart(2, '0')}T02:00:00.000Z`));
    expect(at(started, 'weekly')).toEqual(['2026-11-01', '2026-11-08', '2026-11-15', '2026-11-22', '2026-11-29'].map((d) => `${d}T03:00:00.000Z`));
    expect(at(started, 'monthly')).toEqual(['2026-11-01T04:00:00.000Z']);
    expect(started.every((s) => !s.catchUp && s.at === s.slot)).toBe(true);
    const saved = await store.read();
    expect(saved.jobs.daily).toMatchObject({ servedUntil: '2026-11-30T02:00:00.000Z', lastStatus: 'success', lastCatchUp: false });
  });

  it('runs a weekly (and a monthly) that came due during a long daily right after it, in the order they were due', async () => {
    const started = await simulate('2026-11-01T00:00:00Z', '2026-11-01T12:00:00Z', (s) => (s.job.name === 'daily' ? 2.5 * HOUR : 20 * MIN));
    expect(started.map((s) => [s.job, s.at, s.slot])).toEqual([
      ['daily', '2026-11-01T02:00:00.000Z', '2026-11-01T02:00:00.000Z'],
      ['weekly', '2026-11-01T04:30:00.000Z', '2026-11-01T03:00:00.000Z'],
      ['monthly', '2026-11-01T04:50:00.000Z', '2026-11-01T04:00:00.000Z'],
    ]);
  });

  it('coalesces: a profile that came due several times during one long run runs once after it', async () => {
    // A daily that takes 50 hours misses two of its own fire times, and the weekly and monthly once.
    let first = true;
    const started = await simulate('2026-11-01T00:00:00Z', '2026-11-03T12:00:00Z', (s) => {
      if (s.job.name === 'daily' && first) {
        first = false;
        return 50 * HOUR;
      }
      return 10 * MIN;
    });
    expect(started.map((s) => [s.job, s.at])).toEqual([
      ['daily', '2026-11-01T02:00:00.000Z'],
      ['weekly', '2026-11-03T04:00:00.000Z'],
      ['monthly', '2026-11-03T04:10:00.000Z'],
      ['daily', '2026-11-03T04:20:00.000Z'],
    ]);
  });

  it('coalesces a job already waiting in the queue that comes due again while the job before it runs', async () => {
    // At 05:00 the long job ends: "other" (due 02:00) runs next, "hourly" (due 02:30) waits behind
    // it; "hourly" comes due again at 05:30 while it still waits, and still runs once.
    const jobs = [
      { name: 'long', schedule: '0 2 * * *' },
      { name: 'other', schedule: '0 2 * * *' },
      { name: 'hourly', schedule: '30 * * * *' },
    ];
    const hours = { long: 3 * HOUR, other: HOUR, hourly: 10 * MIN } as Record<string, number>;
    const started = await simulate('2026-11-01T00:00:00Z', '2026-11-01T07:00:00Z', (s) => hours[s.job.name]!, jobs);
    expect(started.map((s) => [s.job, s.at.slice(11, 16), s.slot.slice(11, 16)])).toEqual([
      ['hourly', '00:30', '00:30'],
      ['hourly', '01:30', '01:30'],
      ['long', '02:00', '02:00'],
      ['other', '05:00', '02:00'],
      ['hourly', '06:00', '02:30'],
      ['hourly', '06:30', '06:30'],
    ]);
  });

  it('after a 3-day outage runs exactly one catch-up per missed profile at start, then keeps the schedule', async () => {
    const before = await simulate('2026-10-25T00:00:00Z', '2026-10-30T12:00:00Z');
    expect(at(before, 'daily')).toHaveLength(6);
    expect(at(before, 'weekly')).toEqual(['2026-10-25T03:00:00.000Z']);
    // Down from 30 October noon to 2 November noon: three dailies, Sunday's weekly and the 1st's monthly missed.
    const after = await simulate('2026-11-02T12:00:00Z', '2026-11-04T12:00:00Z');
    expect(after.filter((s) => s.catchUp).map((s) => [s.job, s.slot])).toEqual([
      ['daily', '2026-11-02T12:00:00.000Z'],
      ['weekly', '2026-11-02T12:00:00.000Z'],
      ['monthly', '2026-11-02T12:00:00.000Z'],
    ]);
    expect(after.filter((s) => !s.catchUp).map((s) => [s.job, s.at])).toEqual([
      ['daily', '2026-11-03T02:00:00.000Z'],
      ['daily', '2026-11-04T02:00:00.000Z'],
    ]);
    // A restart with nothing missed catches nothing up.
    const again = await simulate('2026-11-04T12:30:00Z', '2026-11-04T13:00:00Z');
    expect(again).toEqual([]);
  });

  it('a first start catches nothing up: the daemon has not missed anything yet', async () => {
    expect(await simulate('2026-11-02T12:00:00Z', '2026-11-02T13:00:00Z')).toEqual([]);
  });

  it('survives a failing run (thrown or reported) and keeps running the others', async () => {
    const started = await simulate('2026-11-01T00:00:00Z', '2026-11-03T00:00:00Z', (s, clock) => {
      if (s.job.name === 'weekly') throw new Error('the disk fell off');
      if (s.job.name === 'daily' && clock.now().toISOString().startsWith('2026-11-01')) return { status: 'failed', detail: 'exit 1' };
      return 10 * MIN;
    });
    expect(started.map((s) => s.job)).toEqual(['daily', 'weekly', 'monthly', 'daily']);
    const saved = await store.read();
    expect(saved.jobs.weekly).toMatchObject({ lastStatus: 'failed', servedUntil: '2026-11-01T03:00:00.000Z' });
    expect(saved.jobs.daily).toMatchObject({ lastStatus: 'success', servedUntil: '2026-11-02T02:00:00.000Z' });
  });

  it('a run stopped with the daemon is caught up at the next start', async () => {
    const clock = new SimulatedClock('2026-11-02T03:00:00Z', Date.parse('2026-11-02T12:00:00Z'));
    const scheduler = new Scheduler({
      jobs: SEED,
      store,
      clock,
      zone: 'utc',
      logger: silentLogger(),
      run: async (_s, signal) => {
        clock.advance(5 * MIN);
        clock.stop.abort();
        expect(signal.aborted).toBe(true);
        return { status: 'stopped' };
      },
    });
    await store.write({ jobs: { daily: { servedUntil: '2026-11-01T02:00:00.000Z' } } });
    await scheduler.run(clock.stop.signal);
    const after = await simulate('2026-11-02T04:00:00Z', '2026-11-02T04:30:00Z');
    expect(after.map((s) => [s.job, s.catchUp])).toEqual([['daily', true]]);
  });

  it('reads a damaged state file as empty, with a warning, and a link at its name is refused', async () => {
    await fsp.mkdir(path.join(root, 'state'), { mode: 0o700 });
    await fsp.writeFile(store.file, '{ not json', { mode: 0o600 });
    const warnings: string[] = [];
    expect(await store.read((m) => warnings.push(m))).toEqual({ jobs: {} });
    expect(warnings[0]).toMatch(/schedule\.json is damaged/);
    await fsp.rm(store.file);
    await fsp.symlink('/etc/passwd', store.file);
    await expect(store.read()).rejects.toThrow(/symbolic link/);
  });
});

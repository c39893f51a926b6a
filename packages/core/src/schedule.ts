/**
 * Cron schedules (`"0 2 * * *"`): checked when the config loads, turned into systemd
 * `OnCalendar=` expressions for `sutazai-backup systemd print`, and into fire times for the daemon.
 */

export interface CronField {
  /** The field as written. */
  text: string;
  /** The same in systemd calendar syntax. */
  calendar: string;
  restricted: boolean;
  /** The values it matches (day of week: 0-6, Sunday 0). */
  values: ReadonlySet<number>;
}

export interface CronSchedule {
  minute: CronField;
  hour: CronField;
  dayOfMonth: CronField;
  month: CronField;
  dayOfWeek: CronField;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
/** The most days each month can have (February: in a leap year). */
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const MACROS: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

interface Spec {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** First value of a stepped wildcard, as in "every 15 minutes from :00". */
  start: number;
}

const SPECS: Spec[] = [
  { name: 'minute', min: 0, max: 59, start: 0 },
  { name: 'hour', min: 0, max: 23, start: 0 },
  { name: 'day of month', min: 1, max: 31, start: 1 },
  { name: 'month', min: 1, max: 12, names: MONTHS, start: 1 },
  { name: 'day of week', min: 0, max: 7, names: DAYS.map((d) => d.toLowerCase()), start: 0 },
];

/** Parses a 5-field cron expression (or @daily, ...); throws an Error saying what is wrong. */
export function parseCron(expression: string): CronSchedule {
  const text = MACROS[expression.trim()] ?? expression.trim();
  const parts = text.split(/\s+/);
  if (parts.length !== 5) {
    throw new Error(`expected 5 fields (minute hour day-of-month month day-of-week), like "0 2 * * *"; got ${parts.length}`);
  }
  const fields = parts.map((p, i) => parseField(p, SPECS[i]!));
  const [minute, hour, dayOfMonth, month, dayOfWeek] = fields as [CronField, CronField, CronField, CronField, CronField];
  if (dayOfMonth.restricted && dayOfWeek.restricted) {
    // cron runs when either matches; systemd when both do. Refuse rather than change the meaning.
    throw new Error('restricting both day of month and day of week is ambiguous (cron ORs them); use one of them');
  }
  if (![...month.values].some((m) => [...dayOfMonth.values].some((d) => d <= DAYS_IN_MONTH[m - 1]!))) {
    throw new Error(`day ${dayOfMonth.text} of month ${month.text} never comes`);
  }
  return { minute, hour, dayOfMonth, month, dayOfWeek };
}

function parseValue(raw: string, spec: Spec): number {
  const lower = raw.toLowerCase();
  const named = spec.names?.indexOf(lower) ?? -1;
  const value = named >= 0 ? named + (spec.name === 'month' ? 1 : 0) : /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(value) || value < spec.min || value > spec.max) {
    throw new Error(`${spec.name}: "${raw}" is not in ${spec.min}-${spec.max}`);
  }
  return value;
}

function parseField(text: string, spec: Spec): CronField {
  const max = spec.name === 'day of week' ? 6 : spec.max;
  if (text === '*') return { text, calendar: '*', restricted: false, values: new Set(range(spec.min, max, 1)) };
  const isDow = spec.name === 'day of week';
  const values = new Set<number>();
  const pieces = text.split(',').map((piece) => {
    const [span, stepText] = piece.split('/');
    const step = stepText === undefined ? undefined : Number(stepText);
    if (step !== undefined && !(Number.isInteger(step) && step > 0)) throw new Error(`${spec.name}: bad step in "${piece}"`);
    if (span === '*') {
      if (step === undefined) throw new Error(`${spec.name}: "*" cannot be part of a list`);
      if (isDow) throw new Error(`${spec.name}: steps are not supported here`);
      add(values, range(spec.start, max, step));
      return `${pad(spec.start, spec)}/${step}`;
    }
    const [a, b] = span!.split('-');
    const from = parseValue(a!, spec);
    if (b === undefined) {
      // "5/10" means 5, 15, 25, ... as systemd's "05/10" does.
      add(values, step === undefined ? [isDow ? from % 7 : from] : range(from, max, step));
      if (isDow) return step === undefined ? DAYS[from % 7]! : fail(`${spec.name}: steps are not supported here`);
      return step === undefined ? pad(from, spec) : `${pad(from, spec)}/${step}`;
    }
    const to = parseValue(b, spec);
    if (to < from) throw new Error(`${spec.name}: range "${span}" runs backwards`);
    if (step !== undefined) throw new Error(`${spec.name}: a range with a step ("${piece}") is not supported; list the values`);
    add(values, range(from, to, 1).map((v) => (isDow ? v % 7 : v)));
    if (isDow) return `${DAYS[from % 7]}..${DAYS[to % 7]}`;
    return `${pad(from, spec)}..${pad(to, spec)}`;
  });
  return { text, calendar: pieces.join(','), restricted: true, values };
}

function range(from: number, to: number, step: number): number[] {
  const out: number[] = [];
  for (let v = from; v <= to; v += step) out.push(v);
  return out;
}

function add(set: Set<number>, values: number[]): void {
  for (const v of values) set.add(v);
}

function pad(n: number, spec: Spec): string {
  return spec.name === 'minute' || spec.name === 'hour' ? String(n).padStart(2, '0') : String(n);
}

function fail(message: string): never {
  throw new Error(message);
}

/** The systemd `OnCalendar=` value for a cron expression. */
export function cronToOnCalendar(expression: string): string {
  const s = parseCron(expression);
  const dow = s.dayOfWeek.restricted ? `${s.dayOfWeek.calendar} ` : '';
  return `${dow}*-${s.month.calendar}-${s.dayOfMonth.calendar} ${s.hour.calendar}:${s.minute.calendar}:00`;
}

/** Whose wall clock a schedule reads: the machine's (as cron and systemd timers do), or UTC. */
export type ScheduleZone = 'local' | 'utc';

const MINUTE = 60_000;
/** Enough days to find any fire time parseCron accepts: a 29 February can be 8 years off (2096, 2104). */
const SEARCH_DAYS = 366 * 9;

interface WallClock {
  minute: number;
  hour: number;
  day: number;
  month: number;
  weekday: number;
}

function wallClock(t: Date, zone: ScheduleZone): WallClock {
  return zone === 'utc'
    ? { minute: t.getUTCMinutes(), hour: t.getUTCHours(), day: t.getUTCDate(), month: t.getUTCMonth() + 1, weekday: t.getUTCDay() }
    : { minute: t.getMinutes(), hour: t.getHours(), day: t.getDate(), month: t.getMonth() + 1, weekday: t.getDay() };
}

/** Midnight of the day after `t`'s day, on the zone's wall clock. */
function nextDay(t: Date, zone: ScheduleZone): Date {
  if (zone === 'utc') return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate() + 1));
  return new Date(t.getFullYear(), t.getMonth(), t.getDate() + 1);
}

/**
 * The first time after `after` (whole minutes, strictly later) that the schedule fires. Local
 * time follows the machine's zone through daylight saving changes: a time skipped in spring
 * does not fire that day, a time repeated in autumn fires once (at its first occurrence).
 */
export function nextFireTime(schedule: CronSchedule | string, after: Date, zone: ScheduleZone = 'local'): Date {
  const s = typeof schedule === 'string' ? parseCron(schedule) : schedule;
  let t = new Date(Math.floor(after.getTime() / MINUTE) * MINUTE + MINUTE);
  const limit = after.getTime() + SEARCH_DAYS * 86_400_000;
  while (t.getTime() <= limit) {
    const w = wallClock(t, zone);
    if (!s.month.values.has(w.month) || !s.dayOfMonth.values.has(w.day) || !s.dayOfWeek.values.has(w.weekday)) {
      t = nextDay(t, zone);
      continue;
    }
    if (!s.hour.values.has(w.hour)) {
      t = new Date(t.getTime() + (60 - w.minute) * MINUTE);
      continue;
    }
    if (!s.minute.values.has(w.minute)) {
      t = new Date(t.getTime() + MINUTE);
      continue;
    }
    // The repeated hour of an autumn change: this wall time already fired an hour ago.
    if (zone === 'local' && sameWallTime(new Date(t.getTime() - 3600_000), w)) {
      t = new Date(t.getTime() + MINUTE);
      continue;
    }
    return t;
  }
  throw new Error(`the schedule "${s.minute.text} ${s.hour.text} ${s.dayOfMonth.text} ${s.month.text} ${s.dayOfWeek.text}" never fires`);
}

function sameWallTime(t: Date, w: WallClock): boolean {
  const o = wallClock(t, 'local');
  return o.minute === w.minute && o.hour === w.hour && o.day === w.day && o.month === w.month;
}

/** Every fire time in (`from`, `to`], oldest first. */
export function fireTimesBetween(schedule: CronSchedule | string, from: Date, to: Date, zone: ScheduleZone = 'local'): Date[] {
  const s = typeof schedule === 'string' ? parseCron(schedule) : schedule;
  const out: Date[] = [];
  for (let t = nextFireTime(s, from, zone); t.getTime() <= to.getTime(); t = nextFireTime(s, t, zone)) out.push(t);
  return out;
}

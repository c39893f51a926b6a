/**
 * Cron schedules (`"0 2 * * *"`): checked when the config loads, and turned into systemd
 * `OnCalendar=` expressions for `sutazai-backup systemd print`.
 */

export interface CronField {
  /** The field as written. */
  text: string;
  /** The same in systemd calendar syntax. */
  calendar: string;
  restricted: boolean;
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
  if (text === '*') return { text, calendar: '*', restricted: false };
  const isDow = spec.name === 'day of week';
  const pieces = text.split(',').map((piece) => {
    const [range, stepText] = piece.split('/');
    const step = stepText === undefined ? undefined : Number(stepText);
    if (step !== undefined && !(Number.isInteger(step) && step > 0)) throw new Error(`${spec.name}: bad step in "${piece}"`);
    if (range === '*') {
      if (step === undefined) throw new Error(`${spec.name}: "*" cannot be part of a list`);
      if (isDow) throw new Error(`${spec.name}: steps are not supported here`);
      return `${pad(spec.start, spec)}/${step}`;
    }
    const [a, b] = range!.split('-');
    const from = parseValue(a!, spec);
    if (b === undefined) {
      if (isDow) return step === undefined ? DAYS[from % 7]! : fail(`${spec.name}: steps are not supported here`);
      return step === undefined ? pad(from, spec) : `${pad(from, spec)}/${step}`;
    }
    const to = parseValue(b, spec);
    if (to < from) throw new Error(`${spec.name}: range "${range}" runs backwards`);
    if (step !== undefined) throw new Error(`${spec.name}: a range with a step ("${piece}") is not supported; list the values`);
    if (isDow) return `${DAYS[from % 7]}..${DAYS[to % 7]}`;
    return `${pad(from, spec)}..${pad(to, spec)}`;
  });
  return { text, calendar: pieces.join(','), restricted: true };
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

/**
 * The one duration grammar of the rc file, for every option that takes one (`within`,
 * `throttle`, `maxAge`): a number and a unit, repeated (`90min`, `36h`, `1y6mo`, `1h 30min`).
 *
 *   ms, s (sec), min, h, d, w     fixed lengths (a day is 24 h: time is UTC)
 *   mo, y                          calendar months and years, in whole numbers
 *
 * `m` alone is refused: it is minutes in some tools and months in others, and a retention of
 * `6m` read the wrong way deletes five months of snapshots. Fixed intervals (a notifier's
 * `throttle`, `maxAge`) refuse months and years too, which have no fixed length.
 */

/** A parsed duration: calendar years and months, then a fixed number of milliseconds. */
export interface Duration {
  years: number;
  months: number;
  ms: number;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, sec: 1000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const CALENDAR = new Set(['mo', 'y']);
const PART = /(\d+(?:\.\d+)?)\s*([a-z]+)\s*/gy;

const EXAMPLES = 'like "7d", "36h", "90min", "2w", "6mo" or "1y6mo" (units: s, min, h, d, w, mo, y)';
const FIXED_EXAMPLES = 'like "26h", "90min", "2d" or "1h30min" (units: s, min, h, d, w), or a number of seconds';

export type DurationParse = { duration: Duration; problem?: undefined } | { duration?: undefined; problem: string };

/** Parses `text`, or says what is wrong with it (`fixed`: refuse months and years). */
export function readDuration(text: string, options: { fixed?: boolean } = {}): DurationParse {
  const malformed = { problem: `expected a duration ${options.fixed ? FIXED_EXAMPLES : EXAMPLES}` };
  const parts = splitParts(text.trim());
  if (!parts) return malformed;
  const ambiguous = parts.find((p) => p.unit === 'm');
  if (ambiguous) {
    const as = (unit: string) => `"${text.trim().slice(0, ambiguous.at)}${ambiguous.digits}${unit}${text.trim().slice(ambiguous.end)}"`;
    return { problem: `"${text}" is ambiguous ("m" is minutes in some tools, months in others): write ${as('min')} for minutes or ${as('mo')} for months` };
  }
  const duration: Duration = { years: 0, months: 0, ms: 0 };
  for (const { digits, unit } of parts) {
    const n = Number(digits);
    // A count too large to be exact (beyond 2^53) would be silently rounded: refuse it.
    if (n > Number.MAX_SAFE_INTEGER) return malformed;
    if (CALENDAR.has(unit)) {
      if (options.fixed) return { problem: `"${text}": months and years have no fixed length here: write days or weeks (e.g. "30d", "52w")` };
      if (!Number.isInteger(n)) return { problem: `"${text}": months and years take whole numbers` };
      if (unit === 'y') duration.years += n;
      else duration.months += n;
    } else if (unit in UNIT_MS) duration.ms += n * UNIT_MS[unit]!;
    else return malformed;
  }
  // Numbers too large to count exactly are refused rather than rounded.
  if (!Number.isFinite(duration.ms) || !Number.isSafeInteger(duration.years) || !Number.isSafeInteger(duration.months)) return malformed;
  return { duration };
}

/** The number-and-unit parts of `text`, with where each starts and ends; undefined when something else is in it. */
function splitParts(text: string): { digits: string; unit: string; at: number; end: number }[] | undefined {
  if (!text) return undefined;
  const parts: { digits: string; unit: string; at: number; end: number }[] = [];
  PART.lastIndex = 0;
  let end = 0;
  for (let m = PART.exec(text); m; m = PART.exec(text)) {
    parts.push({ digits: m[1]!, unit: m[2]!, at: m.index, end: m.index + m[1]!.length + m[0].slice(m[1]!.length).trimEnd().length });
    end = PART.lastIndex;
  }
  return end === text.length ? parts : undefined;
}

/** The duration `text` means, or undefined when it is not one (`readDuration` says why). */
export function parseDuration(text: string): Duration | undefined {
  return readDuration(text).duration;
}

/** A fixed interval (`throttle`, `maxAge`) in milliseconds, or undefined when `text` is not one. */
export function parseInterval(text: string): number | undefined {
  return readDuration(text, { fixed: true }).duration?.ms;
}

export function isZeroDuration(d: Duration): boolean {
  return d.years === 0 && d.months === 0 && d.ms === 0;
}

/** `now` minus the duration, in UTC calendar arithmetic (31 March minus 1mo is 3 March). */
export function subtractDuration(now: Date, d: Duration): number {
  const t = new Date(now.getTime());
  t.setUTCFullYear(t.getUTCFullYear() - d.years, t.getUTCMonth() - d.months);
  const bound = t.getTime() - d.ms;
  // A duration longer than any representable date reaches back to the beginning of time.
  return Number.isNaN(bound) ? -Infinity : bound;
}

/** Parses "26h", "90min", "2d", "45s", "1w", "30m" (minutes) into milliseconds. */
export function parseInterval(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3600_000, d: 86_400_000, w: 604_800_000 }[m[2]!]!;
  return Number(m[1]) * unit;
}

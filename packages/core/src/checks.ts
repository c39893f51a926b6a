/** How a health condition counts (`checks.threeTwoOne`, ...): `warning` alerts, `critical` also fails `status`. */
export type Severity = 'warning' | 'critical' | 'off';

/** One named check of a verification, a restore test or `status`. */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** A status check that passes but warns (manifests that nothing authenticates). */
  warning?: boolean;
  detail?: string;
  /** The profile a per-profile check (freshness) is about. */
  profile?: string;
}

/** The failed checks of a result, one line: `tar: ...; integrity_check: ...`. */
export function failedChecks(a: { checks: CheckResult[] }): string {
  return a.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}${c.detail ? `: ${c.detail}` : ''}`)
    .join('; ');
}

/** A health condition found present, as its severity says: a warning passes (and alerts), a critical one fails. */
export function conditionResult(name: string, present: boolean, severity: Exclude<Severity, 'off'>, detail: string): CheckResult {
  if (!present) return { name, ok: true, detail };
  return severity === 'critical' ? { name, ok: false, detail } : { name, ok: true, warning: true, detail };
}

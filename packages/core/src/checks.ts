/** One named check of a verification, a restore test or `status`. */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** A status check that passes but warns (manifests that nothing authenticates). */
  warning?: boolean;
  detail?: string;
}

/** The failed checks of a result, one line: `tar: ...; integrity_check: ...`. */
export function failedChecks(a: { checks: CheckResult[] }): string {
  return a.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}${c.detail ? `: ${c.detail}` : ''}`)
    .join('; ');
}

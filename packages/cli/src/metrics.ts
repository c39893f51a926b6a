import { parseSnapshotId, type Engine } from '@sutazai/backup-core';

interface Sample {
  labels?: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  samples: Sample[];
}

function escape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function render(families: Family[], constant: Record<string, string>): string {
  const out: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} gauge`);
    for (const s of f.samples) {
      const labels = { ...constant, ...s.labels };
      const text = Object.entries(labels)
        .map(([k, v]) => `${k}="${escape(v)}"`)
        .join(',');
      out.push(`${f.name}{${text}} ${Number.isFinite(s.value) ? s.value : 'NaN'}`);
    }
  }
  return out.join('\n') + '\n';
}

/** A check's labels: its name, and the profile of a per-profile one (freshness), so that no two series collide. */
const checkLabels = (c: { name: string; profile?: string | undefined }) => ({ check: c.name, ...(c.profile ? { profile: c.profile } : {}) });

const seconds = (iso: string | undefined) => (iso ? Date.parse(iso) / 1000 : NaN);

/** The health of the backups in Prometheus' text format (for `metrics` and `serve`). */
export async function prometheusMetrics(engine: Engine): Promise<string> {
  const [status, history] = await Promise.all([engine.status(), engine.history()]);
  const lastRuns = new Map<string, (typeof history)[number]>();
  for (const r of history) if (r.kind === 'run' && r.profile) lastRuns.set(r.profile, r);
  const runs = [...lastRuns.entries()];
  const families: Family[] = [
    { name: 'sutazai_backup_healthy', help: '1 when every health check passes.', samples: [{ value: status.healthy ? 1 : 0 }] },
    {
      name: 'sutazai_backup_check_ok',
      help: '1 when the named health check passes (a warning passes).',
      samples: status.checks.map((c) => ({ labels: checkLabels(c), value: c.ok ? 1 : 0 })),
    },
    {
      name: 'sutazai_backup_check_warning',
      help: '1 when the named health check passes with a warning (a condition of severity warning).',
      samples: status.checks.map((c) => ({ labels: checkLabels(c), value: c.warning ? 1 : 0 })),
    },
    { name: 'sutazai_backup_snapshots', help: 'Snapshots in backupRoot.', samples: [{ value: status.snapshots }] },
    {
      name: 'sutazai_backup_latest_snapshot_timestamp_seconds',
      help: 'When the newest snapshot in backupRoot was taken.',
      samples: status.latest ? [{ value: parseSnapshotId(status.latest)!.time.getTime() / 1000 }] : [],
    },
    { name: 'sutazai_backup_last_run_success', help: '1 when the last run of the profile succeeded.', samples: runs.map(([p, r]) => ({ labels: { profile: p }, value: r.status === 'success' ? 1 : 0 })) },
    { name: 'sutazai_backup_last_run_timestamp_seconds', help: 'When the last run of the profile finished.', samples: runs.map(([p, r]) => ({ labels: { profile: p }, value: seconds(r.finishedAt) })) },
    {
      name: 'sutazai_backup_last_run_duration_seconds',
      help: 'How long the last run of the profile took.',
      samples: runs.map(([p, r]) => ({ labels: { profile: p }, value: (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000 })),
    },
    { name: 'sutazai_backup_last_run_bytes', help: 'Bytes stored by the last run of the profile.', samples: runs.map(([p, r]) => ({ labels: { profile: p }, value: r.bytes ?? 0 })) },
    { name: 'sutazai_backup_copies', help: 'Copies of the newest snapshot (3-2-1: three).', samples: [{ value: status.strategy.copies }] },
    { name: 'sutazai_backup_media', help: 'Kinds of media holding copies (3-2-1: two).', samples: [{ value: status.strategy.media }] },
    { name: 'sutazai_backup_offsite', help: '1 when a copy is off site (3-2-1: one).', samples: [{ value: status.strategy.offsite ? 1 : 0 }] },
    { name: 'sutazai_backup_321_compliant', help: '1 when the 3-2-1 rule holds.', samples: [{ value: status.strategy.compliant ? 1 : 0 }] },
  ];
  return render(families, { host: engine.config.host });
}

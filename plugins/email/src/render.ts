import { notificationFacts, TOOL_NAME, CORE_VERSION, type Notification } from '@sutazai/backup-core';

/** `[sutazai-backup] backup FAILED: sutazai-prod-1 / daily`: host, profile and outcome. */
export function subjectOf(n: Notification, prefix: string): string {
  return `${prefix ? `${prefix} ` : ''}${n.title}`.replace(/[\r\n]+/g, ' ');
}

function logTail(n: Notification, lines: number): string[] {
  return n.kind === 'run' && lines > 0 ? n.report.logTail.slice(-lines) : [];
}

export function renderText(n: Notification, logLines: number): string {
  const facts = notificationFacts(n);
  const width = Math.max(...facts.map(([k]) => k.length));
  const out = [n.title, '', ...n.lines, '', ...facts.map(([k, v]) => `${k.padEnd(width)}  ${v}`)];
  if (n.kind === 'run') {
    const r = n.report;
    if (r.errors.length) out.push('', 'Errors:', ...r.errors.map((e) => `  ${e.plugin ?? 'run'} (${e.stage}) ${e.code}: ${e.message}`));
    if (r.warnings.length) out.push('', 'Warnings:', ...r.warnings.map((w) => `  ${w}`));
    if (r.destinations.length) {
      out.push('', 'Destinations:', ...r.destinations.map((d) => `  ${d.name}: ${d.status}, ${d.sent} sent, ${d.skipped} already there${d.error ? `: ${d.error}` : ''}`));
    }
  }
  const tail = logTail(n, logLines);
  if (tail.length) out.push('', 'Last log lines:', ...tail.map((l) => `  ${l}`));
  out.push('', `-- ${TOOL_NAME} ${CORE_VERSION}`);
  return out.join('\n') + '\n';
}

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const color: Record<Notification['event'], string> = { failure: '#b42318', warning: '#b54708', success: '#067647', recovery: '#067647' };

export function renderHtml(n: Notification, logLines: number): string {
  const cell = 'padding:4px 12px 4px 0;vertical-align:top;text-align:left';
  const rows = notificationFacts(n)
    .map(([k, v]) => `<tr><th style="${cell}">${escape(k)}</th><td style="${cell}">${escape(v)}</td></tr>`)
    .join('');
  const parts = [
    `<h2 style="color:${color[n.event]};font-family:sans-serif">${escape(n.title)}</h2>`,
    `<ul style="font-family:sans-serif">${n.lines.map((l) => `<li>${escape(l)}</li>`).join('')}</ul>`,
    `<table style="border-collapse:collapse;font-family:sans-serif">${rows}</table>`,
  ];
  if (n.kind === 'run') {
    const r = n.report;
    if (r.errors.length) {
      const errorRows = r.errors
        .map((e) => `<tr><td style="${cell}">${escape(e.plugin ?? 'run')}</td><td style="${cell}">${escape(e.stage)}</td><td style="${cell}">${escape(e.code)}</td><td style="${cell}">${escape(e.message)}</td></tr>`)
        .join('');
      parts.push(
        `<h3 style="font-family:sans-serif">Errors</h3><table style="border-collapse:collapse;font-family:sans-serif"><tr><th style="${cell}">Plugin</th><th style="${cell}">Stage</th><th style="${cell}">Code</th><th style="${cell}">Message</th></tr>${errorRows}</table>`,
      );
    }
  }
  const tail = logTail(n, logLines);
  if (tail.length) parts.push(`<h3 style="font-family:sans-serif">Last log lines</h3><pre>${escape(tail.join('\n'))}</pre>`);
  parts.push(`<p style="color:#667085;font-family:sans-serif">${escape(`${TOOL_NAME} ${CORE_VERSION}`)}</p>`);
  return `<!doctype html><html><body>${parts.join('\n')}</body></html>\n`;
}

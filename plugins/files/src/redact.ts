import { isSecretKey } from '@sutazai/backup-core';

export const REDACTED_VALUE = '***REDACTED***';

export type RedactFormat = 'env' | 'json' | 'yaml';

/** Picks a format from the file name: JSON and YAML by extension, KEY=VALUE for everything else. */
export function formatOf(file: string): RedactFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  return 'env';
}

export interface RedactResult {
  text: string;
  /** The keys whose values were replaced. */
  keys: string[];
}

/**
 * Replaces the values of secret-looking keys and keeps the keys, so configuration is backed up
 * "sanitized": what was configured stays visible, the secrets do not.
 */
export function redactText(text: string, format: RedactFormat, isSecret: (key: string) => boolean = isSecretKey): RedactResult {
  if (format === 'json') {
    try {
      const keys: string[] = [];
      const data = JSON.parse(text) as unknown;
      const out = redactJson(data, isSecret, keys);
      return { text: JSON.stringify(out, null, detectIndent(text)) + (text.endsWith('\n') ? '\n' : ''), keys };
    } catch {
      // Not valid JSON (comments, trailing commas): fall back to a line-based pass.
      return redactLines(text, /^(\s*"([^"]+)"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)(.*)$/, isSecret, () => `"${REDACTED_VALUE}"`);
    }
  }
  if (format === 'yaml') {
    return redactLines(text, /^(\s*(?:-\s+)?["']?([A-Za-z0-9_.-]+)["']?\s*:[ \t]+)(?![|>]\s*$)([^#\n]*?)(\s*(?:#.*)?)$/, isSecret, () => `"${REDACTED_VALUE}"`);
  }
  return redactLines(text, /^(\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*)(.*?)(\s*)$/, isSecret, () => REDACTED_VALUE);
}

function redactLines(text: string, pattern: RegExp, isSecret: (key: string) => boolean, replacement: () => string): RedactResult {
  const keys: string[] = [];
  const lines = text.split('\n').map((line) => {
    const m = pattern.exec(line);
    if (!m) return line;
    const [, head, key, value, tail] = m;
    if (!key || !isSecret(key) || !value || value.trim() === '') return line;
    keys.push(key);
    return `${head}${replacement()}${tail ?? ''}`;
  });
  return { text: lines.join('\n'), keys };
}

function redactJson(value: unknown, isSecret: (key: string) => boolean, keys: string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => redactJson(v, isSecret, keys));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (isSecret(k) && (typeof v === 'string' || typeof v === 'number') && v !== '') {
        keys.push(k);
        out[k] = REDACTED_VALUE;
      } else {
        out[k] = redactJson(v, isSecret, keys);
      }
    }
    return out;
  }
  return value;
}

function detectIndent(text: string): number | string {
  const m = /\n([ \t]+)"/.exec(text);
  if (!m) return 2;
  return m[1]!.includes('\t') ? '\t' : m[1]!.length;
}

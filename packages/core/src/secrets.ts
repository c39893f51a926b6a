/**
 * Secrets never come back out: every value registered here is printed as `***` by the logger,
 * reports, manifests, alerts and `config show`.
 */
// `webhook`: a Slack, Discord or Teams incoming-webhook URL is itself the credential.
const SECRET_KEY = /(pass(word|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credential|auth[-_]?token|^key$|[-_]key$|signing|webhook)/i;

/** Names of options that hold where a secret is (`passwordFile`, `privateKeyPath`), not the secret. */
const LOCATION_KEY = /(file|path)$/i;

/** Whether an option name (or environment variable name) says its value is a secret. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !LOCATION_KEY.test(key);
}

export const REDACTED = '***';

export class SecretRegistry {
  #values = new Set<string>();
  #pattern: RegExp | undefined;

  /** Registers a secret value; too-short values are ignored so that `***` does not replace common words. */
  add(value: unknown): void {
    if (typeof value !== 'string' && typeof value !== 'number') return;
    const text = String(value);
    if (text.length < 4) return;
    const forms = new Set([text, encodeURIComponent(text)]);
    for (const form of forms) {
      if (!this.#values.has(form)) {
        this.#values.add(form);
        this.#pattern = undefined;
      }
    }
    const url = parseUrl(text);
    if (url?.password) this.add(decodeURIComponent(url.password));
  }

  /** Registers the password of a URL such as postgres://user:pw@host/db. */
  addFromUrl(value: unknown): void {
    if (typeof value !== 'string') return;
    const url = parseUrl(value);
    if (url?.password) this.add(decodeURIComponent(url.password));
  }

  get size(): number {
    return this.#values.size;
  }

  redact(text: string): string {
    if (this.#values.size === 0 || !text) return text;
    this.#pattern ??= new RegExp(
      [...this.#values]
        .sort((a, b) => b.length - a.length)
        .map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('|'),
      'g',
    );
    return text.replace(this.#pattern, REDACTED);
  }

  /** A deep copy of a JSON-like value with every registered secret redacted. */
  redactDeep<T>(value: T): T {
    return redactValue(value, this, new WeakSet()) as T;
  }
}

function redactValue(value: unknown, registry: SecretRegistry, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return registry.redact(value);
  if (value instanceof Error) {
    return { name: value.name, message: registry.redact(value.message) };
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v, registry, seen));
  if (value && typeof value === 'object') {
    if (seen.has(value)) return '[circular]';
    seen.add(value);
    if (value instanceof Date) return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v, registry, seen);
    return out;
  }
  return value;
}

/** Redacts values under secret-looking keys (for `config show`), whether or not they were registered. */
export function maskSecretKeys(value: unknown, registry: SecretRegistry): unknown {
  if (Array.isArray(value)) return value.map((v) => maskSecretKeys(v, registry));
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSecretKey(k) && (typeof v === 'string' || typeof v === 'number') ? REDACTED : maskSecretKeys(v, registry);
    }
    return out;
  }
  if (typeof value === 'string') {
    const url = parseUrl(value);
    if (url?.password) {
      url.password = REDACTED;
      return registry.redact(url.toString().replace(encodeURIComponent(REDACTED), REDACTED));
    }
    return registry.redact(value);
  }
  return value;
}

function parseUrl(text: string): URL | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/\s]*@/i.test(text)) return undefined;
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** The registry shared by everything in this process. */
export const secrets = new SecretRegistry();

/**
 * Secrets never come back out: every value registered here is printed as `***` by the logger,
 * reports, manifests, alerts and `config show`.
 */
// `webhook`: a Slack, Discord or Teams incoming-webhook URL is itself the credential. `cookie`,
// `authorization`: the credential headers (Cookie, Authorization, Proxy-Authorization).
const SECRET_KEY =
  /(pass(word|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credential|auth[-_]?token|^key$|[-_]key$|signing|webhook|cookie|authori[sz]ation)/i;

/** Names of options that hold where a secret is (`passwordFile`, `privateKeyPath`), not the secret. */
const LOCATION_KEY = /(file|path)$/i;

/** URL query parameters whose value is a credential: `?token=`, `?api_key=`, `&X-Amz-Signature=`, `?sig=`. */
const SECRET_PARAM = /(token|key|secret|sig|pass|pwd|auth|credential|session)/i;
/**
 * ...except names that point to a file: libpq's `sslkey` (MySQL's `ssl-key`), `...file`, `...path`.
 * libpq's `sslpassword`, the password of that key, is a secret.
 */
const LOCATION_PARAM = /(^ssl[-_]?key$|file$|path$)/i;

/** Whether an option name (or environment variable name, or header name) says its value is a secret. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !LOCATION_KEY.test(key);
}

/** Whether a URL query parameter's name says its value is a credential. */
export function isSecretParam(name: string): boolean {
  return SECRET_PARAM.test(name) && !LOCATION_PARAM.test(name);
}

export const REDACTED = '***';

/** A URL in free text (a config value, a server's reply, an error message). */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/**
 * The credentials inside a URL, decoded: its password (`user:password@`) and the values of
 * secret-looking query parameters.
 */
export function urlCredentials(text: string): string[] {
  const found: string[] = [];
  const userinfo = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s@:]*:([^/?#\s@]*)@/i.exec(text);
  if (userinfo?.[1]) found.push(safeDecode(userinfo[1]));
  const query = text.indexOf('?');
  if (query >= 0) {
    for (const part of text.slice(query + 1).split('#')[0]!.split('&')) {
      const eq = part.indexOf('=');
      if (eq > 0 && isSecretParam(safeDecode(part.slice(0, eq))) && part.length > eq + 1) found.push(safeDecode(part.slice(eq + 1).replace(/\+/g, ' ')));
    }
  }
  return found;
}

/** One URL with its password and secret query values replaced by `***`, the rest as written. */
export function maskUrl(text: string): string {
  return text
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#\s@:]*:)[^/?#\s@]*@/i, `$1${REDACTED}@`)
    .replace(/([?&])([^=&#\s]+)=([^&#\s]*)/g, (whole, sep: string, name: string, value: string) =>
      value && isSecretParam(safeDecode(name)) ? `${sep}${name}=${REDACTED}` : whole,
    );
}

/** Free text with every URL in it masked (see `maskUrl`). */
export function maskUrlsIn(text: string): string {
  return text.replace(URL_IN_TEXT, (url) => maskUrl(url));
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

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
    if (typeof value === 'string') for (const credential of urlCredentials(value)) this.add(credential);
  }

  /** Registers the credentials inside a URL: postgres://user:pw@host/db, https://host/hook?token=... */
  addFromUrl(value: unknown): void {
    if (typeof value !== 'string') return;
    for (const found of value.match(URL_IN_TEXT) ?? []) for (const credential of urlCredentials(found)) this.add(credential);
  }

  /**
   * Registers the value of a credential (a header like `Authorization: Bearer abc`, a cookie
   * list) and the parts a server may echo on their own: the token after the scheme, the password
   * inside Basic credentials, each cookie's value.
   */
  addCredential(value: unknown): void {
    if (typeof value !== 'string') return this.add(value);
    this.add(value);
    const scheme = /^\s*([A-Za-z][\w-]*)\s+(\S+)\s*$/.exec(value);
    if (scheme) {
      this.add(scheme[2]);
      if (scheme[1]!.toLowerCase() === 'basic') {
        const decoded = Buffer.from(scheme[2]!, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon >= 0) this.add(decoded.slice(colon + 1));
      }
    }
    if (value.includes('=')) for (const cookie of value.split(';')) this.add(cookie.slice(cookie.indexOf('=') + 1).trim());
  }

  /** Registers the credentials among HTTP headers (Authorization, Cookie, X-Api-Key, ...). */
  addHeaders(headers: Record<string, string>): void {
    for (const [name, value] of Object.entries(headers)) if (isSecretKey(name)) this.addCredential(value);
  }

  /** A registry with this one's values, to add a request's own credentials to without sharing them. */
  fork(): SecretRegistry {
    const copy = new SecretRegistry();
    for (const v of this.#values) copy.#values.add(v);
    return copy;
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

/**
 * Redacts values under secret-looking keys (for `config show`), whether or not they were
 * registered, and the credentials inside every URL.
 */
export function maskSecretKeys(value: unknown, registry: SecretRegistry): unknown {
  if (Array.isArray(value)) return value.map((v) => maskSecretKeys(v, registry));
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSecretKey(k) && (typeof v === 'string' || typeof v === 'number') ? REDACTED : maskSecretKeys(v, registry);
    }
    return out;
  }
  if (typeof value === 'string') return registry.redact(maskUrlsIn(value));
  return value;
}

/** How much of a server's reply a message quotes. */
const REPLY_QUOTE = 200;

/**
 * A server's reply as a message may quote it: known secrets and the credentials of any URL in it
 * masked (a server may echo the request, token and all), on one line, and short.
 */
export function quoteReply(text: string, secrets: SecretRegistry): string {
  const line = secrets.redact(maskUrlsIn(text)).replace(/\s+/g, ' ').trim();
  return line.length > REPLY_QUOTE ? `${line.slice(0, REPLY_QUOTE)}... (${line.length - REPLY_QUOTE} more characters)` : line;
}

/** The registry shared by everything in this process. */
export const secrets = new SecretRegistry();

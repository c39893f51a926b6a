import { z } from './vendor/zod.js';
import { ConfigError, type ConfigIssue } from './errors.js';

export { z };

/** Joins a key path the way the rc file reads: `sources.app-db.paths[0]`. */
export function joinPath(base: string, segments: readonly PropertyKey[]): string {
  let out = base;
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out ? `.${String(s)}` : String(s);
  }
  return out;
}

/** Turns zod's issues into `dotted.path: what is expected` lines. */
export function zodIssues(error: z.ZodError, base: string): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const where = joinPath(base, issue.path);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: joinPath(where, [key]), message: 'unknown option (check its spelling in the plugin README)' });
      }
      continue;
    }
    if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
      out.push({ path: where, message: `required option is missing (expected ${issue.expected})` });
      continue;
    }
    if (issue.code === 'invalid_union') {
      out.push({ path: where, message: issue.message.replace(/^Invalid input: ?/, '') || 'no accepted form matches' });
      continue;
    }
    out.push({ path: where, message: issue.message.replace(/^Invalid input: /, '') });
  }
  return out;
}

/** Parses plugin options, throwing a ConfigError whose key paths start at `base`. */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, base: string, file?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ConfigError(zodIssues(result.error, base), file);
  return result.data;
}

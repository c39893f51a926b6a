import { promises as fsp } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { BackupError, defineSource, expandHome, isSecretKey as defaultIsSecret, z, type TreeEntry } from '@sutazai/backup-core';
import { formatOf, redactText } from './redact.js';

export { redactText, formatOf, REDACTED_VALUE } from './redact.js';

const MAX_REDACT_BYTES = 16 * 1024 * 1024;

export const filesOptions = z
  .object({
    /** Files and folders to back up; relative paths resolve from the rc file's folder. */
    paths: z.array(z.string().min(1)).min(1),
    /** Only files matching one of these globs (folders are always walked). */
    include: z.array(z.string()).optional(),
    /** Leave out files and folders matching any of these globs. */
    exclude: z.array(z.string()).default([]),
    /** In files matching these globs, replace the values of secret-looking keys. */
    redact: z.array(z.string()).default([]),
    /** More key names (case-insensitive regular expressions) to treat as secrets when redacting. */
    redactKeys: z.array(z.string()).default([]),
  })
  .strict();

export type FilesOptions = z.input<typeof filesOptions>;

/**
 * A glob matches a path relative to one of the roots, or the absolute path; a glob without `/`
 * matches the base name anywhere (`*.tmp`).
 */
export function makeMatcher(globs: readonly string[], roots: readonly string[]): ((absPath: string) => boolean) | undefined {
  if (globs.length === 0) return undefined;
  const tests = globs.map((glob) => {
    const isMatch = picomatch(glob.replace(/^\//, ''), { dot: true, basename: !glob.includes('/') });
    return isMatch;
  });
  return (absPath) => {
    const candidates = [absPath.slice(1)];
    for (const root of roots) {
      if (absPath.startsWith(root + path.sep)) candidates.push(absPath.slice(root.length + 1));
    }
    return tests.some((t) => candidates.some((c) => t(c)));
  };
}

/** `use: files` — paths, include/exclude globs and secret redaction, archived as one tar. */
export default defineSource({
  name: 'files',
  options: filesOptions,
  reads(options, { configDir }) {
    const roots = options.paths.map((p) => path.resolve(configDir, expandHome(p)));
    const excluded = makeMatcher(options.exclude, roots);
    return [{ key: 'paths', paths: roots, skips: excluded ?? (() => false) }];
  },
  async collect(ctx, options) {
    const roots = options.paths.map((p) => path.resolve(ctx.configDir, expandHome(p)));
    for (const root of roots) {
      try {
        await fsp.access(root, fsp.constants.R_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new BackupError('E_SOURCE', `${ctx.key}: path ${root} ${code === 'ENOENT' ? 'does not exist' : 'cannot be read'} (${code})`, {
          plugin: ctx.key,
          details: { path: root },
        });
      }
    }
    const excluded = makeMatcher(options.exclude, roots);
    const included = options.include ? makeMatcher(options.include, roots) : undefined;
    const redacted = makeMatcher(options.redact, roots);
    const extraKeys = options.redactKeys.map((k) => new RegExp(k, 'i'));
    const isSecret = extraKeys.length
      ? (key: string) => extraKeys.some((r) => r.test(key)) || defaultIsSecret(key)
      : defaultIsSecret;

    const filter = (entry: TreeEntry) => {
      // A root named explicitly is always taken.
      if (roots.includes(entry.absPath)) return true;
      if (excluded?.(entry.absPath)) return false;
      if (entry.type === 'directory') return true;
      return !included || included(entry.absPath);
    };
    const transform = redacted
      ? async (entry: TreeEntry) => {
          if (!redacted(entry.absPath)) return null;
          if (entry.stat.size > MAX_REDACT_BYTES) {
            throw new BackupError('E_SOURCE', `${ctx.key}: ${entry.absPath} is too large to redact (${entry.stat.size} bytes)`);
          }
          const text = await fsp.readFile(entry.absPath, 'utf8').catch((err: Error) => {
            throw new BackupError('E_SOURCE', `${ctx.key}: file ${entry.absPath} cannot be read (${err.message})`);
          });
          const result = redactText(text, formatOf(entry.absPath), isSecret);
          if (result.keys.length) ctx.logger.debug(`redacted ${result.keys.length} value(s) in ${entry.absPath}`, { keys: result.keys.join(',') });
          return Buffer.from(result.text);
        }
      : undefined;
    return [
      {
        type: 'tree' as const,
        name: ctx.instance,
        paths: roots,
        filter,
        ...(transform ? { transform } : {}),
        meta: { paths: roots, ...(options.redact.length ? { redacted: options.redact } : {}) },
      },
    ];
  },
});


import { accessSync, constants, readdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { BackupError, runChild, secrets } from '@sutazai/backup-core';

export type ToolName = 'pg_dump' | 'pg_dumpall' | 'pg_restore';

export interface Tool {
  name: ToolName;
  path: string;
  /** `15.20` */
  version: string;
  major: number;
}

export interface ToolOptions {
  pgDump?: string | undefined;
  pgDumpall?: string | undefined;
  pgRestore?: string | undefined;
  binDir?: string | undefined;
}

const explicitOption: Record<ToolName, keyof ToolOptions> = { pg_dump: 'pgDump', pg_dumpall: 'pgDumpall', pg_restore: 'pgRestore' };

const versions = new Map<string, Promise<{ version: string; major: number } | undefined>>();

/** `pg_dump --version` → `pg_dump (PostgreSQL) 15.20 (Debian ...)`. */
function versionOf(file: string): Promise<{ version: string; major: number } | undefined> {
  let found = versions.get(file);
  if (!found) {
    found = runChild({ path: file, name: path.basename(file) }, ['--version'], { what: `${file} --version`, code: 'E_SOURCE', secrets, signal: AbortSignal.timeout(10_000) })
      .then((stdout) => {
        const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(stdout);
        return m ? { version: m[2] === undefined ? m[1]! : `${m[1]}.${m[2]}`, major: Number(m[1]) } : undefined;
      })
      .catch(() => undefined);
    versions.set(file, found);
  }
  return found;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Debian's /usr/bin/pg_dump is pg_wrapper, a script that picks a version itself. */
function isWrapper(file: string): boolean {
  try {
    return path.basename(realpathSync(file)) === 'pg_wrapper';
  } catch {
    return false;
  }
}

/** Where to look when no binary is configured: PATH, then every /usr/lib/postgresql/<major>/bin, newest first. */
function candidateDirs(): string[] {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  try {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    dirs.push(...majors.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // no Debian-style installation
  }
  dirs.push('/usr/local/pgsql/bin');
  return [...new Set(dirs)];
}

/** Starts the `--version` probes of a program's candidates, so that a later findTool finds them done. */
export function probeTools(name: ToolName, options: ToolOptions): void {
  const configured = options[explicitOption[name]] ?? (options.binDir ? path.join(options.binDir, name) : undefined);
  const files = configured ? [configured] : candidateDirs().map((dir) => path.join(dir, name));
  for (const file of files) if (executable(file) && !isWrapper(file)) void versionOf(file);
}

/**
 * Picks a PostgreSQL client program: the configured one (`pgDump`, ... or `binDir`), else from
 * PATH and /usr/lib/postgresql/<major>/bin. It must be at least `minMajor` (pg_dump refuses a newer
 * server; pg_restore cannot read archives of a newer pg_dump); among those, the one of major
 * `prefer` (the server's) wins, else the oldest newer one, else (no server to match) the newest.
 */
export async function findTool(name: ToolName, options: ToolOptions, want: { minMajor?: number; prefer?: number; why?: string }, where: string): Promise<Tool> {
  const configured = options[explicitOption[name]];
  const need = want.minMajor ?? 0;
  const needText = need ? ` of version ${need} or newer${want.why ? ` (${want.why})` : ''}` : '';
  if (configured || options.binDir) {
    const file = configured ?? path.join(options.binDir!, name);
    const key = configured ? `${where}.${explicitOption[name]}` : `${where}.binDir`;
    const v = executable(file) ? await versionOf(file) : undefined;
    if (!v) throw new BackupError('E_SOURCE', `${key}: ${file} is not a runnable ${name}`);
    if (v.major < need) {
      throw new BackupError('E_SOURCE', `${key}: ${file} is version ${v.version}; a ${name}${needText} is needed`);
    }
    return { name, path: file, ...v };
  }
  // Probe the real programs first, all at once; Debian's pg_wrapper scripts only when those do not do.
  const files = candidateDirs()
    .map((dir) => path.join(dir, name))
    .filter(executable);
  const probe = async (list: string[]) =>
    (await Promise.all(list.map(async (file) => ({ file, v: await versionOf(file) }))))
      .filter((p) => p.v)
      .map((p): Tool => ({ name, path: p.file, ...p.v! }));
  const found = await probe(files.filter((f) => !isWrapper(f)));
  if (!found.some((t) => t.major >= need && (want.prefer === undefined || t.major === want.prefer))) {
    found.push(...(await probe(files.filter(isWrapper))));
  }
  const usable = found.filter((t) => t.major >= need).sort((a, b) => Number(isWrapper(a.path)) - Number(isWrapper(b.path)));
  if (usable.length === 0) {
    const seen = found.length ? ` (found: ${found.map((t) => `${t.path} ${t.version}`).join(', ')})` : '';
    throw new BackupError(
      'E_SOURCE',
      `${where}: no ${name}${needText} found in PATH or /usr/lib/postgresql/*/bin${seen}: install the PostgreSQL client of that version, or set ${explicitOption[name]} or binDir`,
    );
  }
  const exact = usable.find((t) => t.major === want.prefer);
  if (exact) return exact;
  const sorted = [...usable].sort((a, b) => a.major - b.major);
  if (want.prefer === undefined) return sorted.filter((t) => t.major === sorted.at(-1)!.major)[0]!;
  return sorted[0]!;
}

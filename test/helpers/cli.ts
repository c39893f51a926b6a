/**
 * Drives the real, built command line (`packages/cli/dist/bin.js`) in a child process, as a user
 * or a cron job would.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_BIN = path.join(REPO_ROOT, 'packages/cli/dist/bin.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for --json). */
  json<T = any>(): T;
}

export interface CliOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Run as another user (root only). */
  uid?: number;
  gid?: number;
  /** The Node.js binary (default: the one running the tests). */
  node?: string;
}

/** Starts the CLI without waiting: for tests that kill it or run two at once. */
export function startCli(args: string[], options: CliOptions): { child: ChildProcess; result: Promise<CliResult> } {
  const spawnOptions: SpawnOptions = {
    cwd: options.cwd,
    env: { ...process.env, SUTAZAI_BACKUP_LOG_LEVEL: 'debug', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  };
  const child = spawn(options.node ?? process.execPath, [CLI_BIN, ...args], spawnOptions);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout,
        stderr,
        json() {
          try {
            return JSON.parse(stdout);
          } catch {
            throw new Error(`stdout is not JSON (exit ${code}):\n${stdout}\nstderr:\n${stderr}`);
          }
        },
      });
    });
  });
  return { child, result };
}

export function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  return startCli(args, options).result;
}

/** A fresh temporary folder for one test. */
export async function tempDir(prefix = 'sutazai-it-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Writes an rc file (YAML text) into `dir` and returns its path. */
export async function writeRc(dir: string, yaml: string, name = '.sutazai-backuprc'): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, yaml, { mode: 0o600 });
  return file;
}

/**
 * A project folder `dir` (made) whose rc file backs up one source into ./backups:
 * `source: { use, ...body }`, `body` being the source's options as YAML lines.
 */
export async function sourceProject(dir: string, source: string, use: string, body: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  await writeRc(dir, `backupRoot: ./backups\nsources:\n  ${source}:\n    use: ${use}\n${body.replace(/^/gm, '    ')}\n`);
  return dir;
}

/** The ids of the snapshots committed in a project's ./backups (none when nothing ever was). */
export async function committedSnapshots(dir: string): Promise<string[]> {
  const folder = path.join(dir, 'backups', 'snapshots');
  return existsSync(folder) ? (await fsp.readdir(folder)).filter((f) => !f.startsWith('.')) : [];
}

/** The messages the CLI logged on stderr (JSON lines off a TTY), one per line, for matching. */
export function logMessages(stderr: string): string {
  return stderr
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        return (JSON.parse(line) as { msg: string }).msg;
      } catch {
        return line;
      }
    })
    .join('\n');
}

import { existsSync } from 'node:fs';
import path from 'node:path';
import { cosmiconfig } from '../vendor/cosmiconfig.js';
import { BackupError, ConfigError, isBackupError } from '../errors.js';

export const MODULE_NAME = 'sutazai-backup';

/** Finds (from `cwd` up) or loads (`configPath`) the rc file; a file that cannot be read or parsed is a ConfigError naming it. */
export async function readRcFile(cwd: string, configPath: string | undefined): Promise<{ file: string; data: unknown }> {
  const explorer = cosmiconfig(MODULE_NAME, { searchStrategy: 'global', cache: false });
  let result;
  try {
    if (configPath) {
      const file = path.resolve(cwd, configPath);
      if (!existsSync(file)) throw new ConfigError([{ path: '', message: 'file not found' }], file);
      result = await explorer.load(file);
    } else {
      result = await explorer.search(cwd);
    }
  } catch (err) {
    if (isBackupError(err)) throw err;
    const where = (err as { filepath?: string }).filepath ?? (configPath ? path.resolve(cwd, configPath) : undefined);
    throw new ConfigError([{ path: '', message: readFailure(err as Error) }], where, { cause: err });
  }
  if (!result || result.isEmpty) {
    if (result?.filepath) throw new ConfigError([{ path: '', message: 'the file is empty' }], result.filepath);
    throw new BackupError(
      'E_CONFIG',
      `no rc file found: create .sutazai-backuprc in ${cwd} (run \`sutazai-backup init\`), or name one with --config FILE`,
    );
  }
  return { file: result.filepath, data: result.config };
}

/** What went wrong reading the file: a YAML syntax error with its line and column, or the reason. */
function readFailure(e: Error & { reason?: string; mark?: { line: number; column: number; snippet?: string } }): string {
  if (e.name === 'YAMLException' && e.mark) {
    return `YAML syntax error at line ${e.mark.line + 1}, column ${e.mark.column + 1}: ${e.reason ?? e.message}${e.mark.snippet ? `\n${e.mark.snippet}` : ''}`;
  }
  if (e.name === 'YAMLException') return `YAML syntax error: ${e.message}`;
  return `cannot be read: ${e.message}`;
}

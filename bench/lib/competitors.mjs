// The tools a benchmark compares against. One that is missing is a FAIL line and exit code 1,
// before anything is measured: a benchmark that quietly drops a competitor reads as a win.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The absolute path of `command` (a name looked up on PATH, or a path), or undefined. */
export function findCommand(command) {
  const candidates = command.includes('/') ? [command] : (process.env.PATH ?? '').split(':').filter(Boolean).map((dir) => path.join(dir, command));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Checks every competitor `{ name, command, install }`; prints a FAIL line for each one missing
 * and exits 1 if any is. Returns the commands' paths by name.
 */
export function requireCompetitors(competitors) {
  const found = {};
  const missing = [];
  for (const c of competitors) {
    const file = findCommand(c.command);
    if (file) found[c.name] = file;
    else missing.push(c);
  }
  for (const c of missing) console.log(`FAIL  ${c.name}: \`${c.command}\` not found${c.command.includes('/') ? '' : ' on PATH'}; the benchmark compares against it (${c.install})`);
  if (missing.length) process.exit(1);
  return found;
}

import { readFileSync } from 'node:fs';

/**
 * User and group names by id, as restic's static build finds them (Go's os/user without cgo
 * reads /etc/passwd and /etc/group; the first entry for an id wins). Read once per process.
 */
let users: Map<number, string> | undefined;
let groups: Map<number, string> | undefined;

function parseIds(file: string): Map<number, string> {
  const names = new Map<number, string>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return names;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 3 || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const id = Number(fields[2]);
    if (Number.isInteger(id) && !names.has(id)) names.set(id, fields[0]!);
  }
  return names;
}

export function userName(uid: number): string | undefined {
  users ??= parseIds('/etc/passwd');
  return users.get(uid);
}

export function groupName(gid: number): string | undefined {
  groups ??= parseIds('/etc/group');
  return groups.get(gid);
}

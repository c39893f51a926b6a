import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BackupError, defineDestination, expandHome, LocalDestination, z, type PutInfo } from '@sutazai/backup-core';

export const localOptions = z
  .object({
    /** The folder; relative paths resolve from the rc file's folder. */
    path: z.string().min(1),
    /**
     * Refuse to write unless the folder is on a mounted file system other than the root one,
     * so an unplugged external drive never fills the system disk.
     */
    requireMount: z.boolean().default(false),
    /** For 3-2-1 accounting: the kind of medium, and whether it is kept off site. */
    medium: z.enum(['local-disk', 'external-disk', 'network-share']).optional(),
    offsite: z.boolean().default(false),
  })
  .strict();

export type LocalOptions = z.input<typeof localOptions>;

/** Mount points from /proc/self/mountinfo (field 5, with octal escapes decoded). */
export function mountPoints(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  return mountinfo
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))));
}

/** The mount point holding `p`: the longest mount point that is `p` or one of its ancestors. */
export function mountPointOf(p: string, mounts: readonly string[]): string {
  let best = '/';
  for (const m of mounts) {
    if ((p === m || p.startsWith(m.endsWith('/') ? m : `${m}/`)) && m.length > best.length) best = m;
  }
  return best;
}

/** A local folder whose writes are refused when it is not on a mounted drive. */
export class MountCheckedDestination extends LocalDestination {
  readonly #requireMount: boolean;

  constructor(root: string, requireMount: boolean) {
    super(root);
    this.#requireMount = requireMount;
  }

  async checkMounted(): Promise<void> {
    if (!this.#requireMount) return;
    // Resolve symlinks on the nearest existing ancestor: the folder itself may not exist yet.
    let existing = this.root;
    for (;;) {
      try {
        existing = await fsp.realpath(existing);
        break;
      } catch {
        const parent = path.dirname(existing);
        if (parent === existing) break;
        existing = parent;
      }
    }
    const mount = mountPointOf(existing, mountPoints());
    if (mount === '/') {
      throw new BackupError(
        'E_DESTINATION',
        `${this.root} is not on a mounted drive (requireMount: true): is the drive plugged in and mounted? Nothing was written.`,
        { details: { retryable: false } },
      );
    }
  }

  override async put(key: string, body: Readable, info?: PutInfo): Promise<void> {
    await this.checkMounted();
    return super.put(key, body, info);
  }

  override async delete(key: string): Promise<void> {
    await this.checkMounted();
    return super.delete(key);
  }
}

/** `use: local` — a folder: an external drive or an NFS mount for the second copy of 3-2-1. */
export default defineDestination({
  name: 'local',
  options: localOptions,
  traits: (o) => ({ medium: o.medium ?? (o.requireMount ? 'external-disk' : 'local-disk'), offsite: o.offsite }),
  create(options, ctx) {
    return new MountCheckedDestination(path.resolve(ctx.configDir, expandHome(options.path)), options.requireMount);
  },
});

import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DIR_MODE } from './fs.js';
import { StagingArea } from './staging.js';

/**
 * A private scratch area, removed by `dispose`: marked folders in backupRoot's staging/ when
 * backupRoot exists (see StagingArea), else in the system's temporary folder.
 */
export class Scratch {
  readonly #staging: StagingArea | undefined;
  #dirs: string[] = [];

  constructor(backupRoot: string) {
    this.#staging = existsSync(backupRoot) ? new StagingArea(backupRoot) : undefined;
  }

  async dir(label: string): Promise<string> {
    let dir: string;
    if (this.#staging) dir = await this.#staging.scratch(label);
    else {
      dir = await fsp.mkdtemp(path.join(os.tmpdir(), `sutazai-scratch-${label.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}-`));
      await fsp.chmod(dir, DIR_MODE);
    }
    this.#dirs.push(dir);
    return dir;
  }

  async dispose(): Promise<void> {
    const dirs = this.#dirs;
    this.#dirs = [];
    await Promise.all(dirs.map((d) => (this.#staging ? this.#staging.discard(d) : fsp.rm(d, { recursive: true, force: true }))));
  }
}

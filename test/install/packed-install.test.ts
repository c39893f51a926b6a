/**
 * A new user's install from the packed packages, without any native build, with npm
 * (--ignore-scripts) and with pnpm's defaults: scripts/smoke-install.mjs does it and says each step.
 * .ci/run runs the same script under Node 22 and 24 too.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

const tarballs = mkdtempSync(path.join(os.tmpdir(), 'sutazai-tarballs-'));
afterAll(() => rmSync(tarballs, { recursive: true, force: true }));

function smoke(pm: string) {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts/smoke-install.mjs'), '--pm', pm, '--tarballs', tarballs], { encoding: 'utf8', timeout: 600_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('installed from the packed packages, no native build', () => {
  it('packs every package', () => {
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts/smoke-install.mjs'), '--pack-into', tarballs], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('ok   pnpm -r pack');
  });

  for (const pm of ['npm', 'pnpm']) {
    it(`${pm}: init, run (zstd, gzip), list, verify, restore work; a sqlite source asks for its rebuild`, () => {
      const { code, out } = smoke(pm);
      expect(out).toContain('ok   init, then run (zstd, encrypted, with a local destination)');
      expect(out).toContain('ok   run (gzip), list, verify, restore');
      expect(out).toContain('ok   a sqlite source without its native build');
      expect(code, out).toBe(0);
    }, 600_000);
  }
});

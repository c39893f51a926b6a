/**
 * What each package would publish: `npm pack --dry-run` of every workspace package lists LICENSE
 * and README.md, no build info, and every file that its package.json, source maps and declaration
 * maps point at; the package.json fields npm's page and installers read are there.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.js';

interface Manifest {
  name: string;
  version: string;
  license?: string;
  engines?: { node?: string };
  repository?: { url?: string; directory?: string };
  homepage?: string;
  bugs?: { url?: string };
  keywords?: string[];
  types?: string;
  main?: string;
  bin?: Record<string, string>;
  exports?: Record<string, string | { types?: string; default?: string }>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const folders = ['packages', 'plugins'].flatMap((group) => readdirSync(path.join(REPO_ROOT, group)).map((name) => `${group}/${name}`));
const rootEngines = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as Manifest).engines?.node;

function packedFiles(dir: string): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8' });
  return (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
}

const CORE = '@sutazai/backup-core';

describe.each(folders)('%s, as npm would pack it', (folder) => {
  const dir = path.join(REPO_ROOT, folder);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;

  it('ships LICENSE, README.md and what package.json and the maps point at, and no build info', () => {
    const files = packedFiles(dir);
    expect(files).toContain('LICENSE');
    expect(files).toContain('README.md');
    expect(files.filter((f) => f.endsWith('.tsbuildinfo'))).toEqual([]);
    const shipped = new Set(files);
    const pointers = [manifest.main, manifest.types, ...Object.values(manifest.bin ?? {})];
    for (const entry of Object.values(manifest.exports ?? {})) pointers.push(...(typeof entry === 'string' ? [entry] : [entry.types, entry.default]));
    for (const p of pointers.filter((x): x is string => Boolean(x))) expect(shipped, `${p} (package.json)`).toContain(path.posix.normalize(p));
    // A map whose sources are not in the tarball sends debuggers and editors nowhere.
    for (const map of files.filter((f) => f.endsWith('.map'))) {
      const { sources } = JSON.parse(readFileSync(path.join(dir, map), 'utf8')) as { sources: string[] };
      for (const source of sources) expect(shipped, `${source} (from ${map})`).toContain(path.posix.join(path.posix.dirname(map), source));
    }
    expect(readFileSync(path.join(dir, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect(readFileSync(path.join(dir, 'README.md'), 'utf8')).toMatch(new RegExp(`npm install .*${manifest.name.replace('/', '\\/')}`));
  });

  it('says what npm and its page need: engines as tested, repository, homepage, bugs, keywords', () => {
    expect(manifest.license).toBe('MIT');
    expect(manifest.engines?.node).toBe(rootEngines);
    expect(manifest.repository).toMatchObject({ url: expect.stringMatching(/^git\+https:\/\//), directory: folder });
    expect(manifest.homepage).toMatch(/^https:\/\//);
    expect(manifest.bugs?.url).toMatch(/^https:\/\//);
    expect(manifest.keywords).toContain('sutazai-backup');
  });

  it.skipIf(manifest.name === CORE || manifest.name === '@sutazai/backup-cli')('takes core as a peer dependency with a compatible range, not a copy of its own', () => {
    expect(manifest.dependencies?.[CORE]).toBeUndefined();
    // pnpm publishes `workspace:^` as ^<core's version>.
    expect(manifest.peerDependencies?.[CORE]).toBe('workspace:^');
    expect(manifest.devDependencies?.[CORE]).toBe('workspace:*');
  });
});

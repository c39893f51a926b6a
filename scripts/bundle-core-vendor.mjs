#!/usr/bin/env node
// After tsc: bundles each of core's dist/vendor/*.js (a re-export of a dependency: zod, tapable,
// cosmiconfig) into that one file, dependency included, so that the command line loads three
// modules where it loaded ~150 (zod alone is ~95). Same code, one instance of each: core is their
// only importer at run time (plugins use core's `z`). Licenses go in a banner at the top.
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const core = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../packages/core');
const vendor = path.join(core, 'dist/vendor');

/** The license of every package under node_modules that went into the bundle. */
function banner(modules) {
  const packages = new Map();
  for (const id of modules) {
    const m = /^(.*\/node_modules\/((?:@[^/]+\/)?[^/]+))\//.exec(id);
    if (m && !packages.has(m[2])) packages.set(m[2], m[1]);
  }
  const parts = [...packages].sort().map(([name, dir]) => {
    const { version, license } = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    const text = file ? readFileSync(path.join(dir, file), 'utf8').trim() : `License: ${license}`;
    return `${name} ${version}\n\n${text}`;
  });
  return `/*! Bundled from npm packages; their licenses:\n\n${parts.join('\n\n---\n\n').replace(/\*\//g, '* /')}\n*/`;
}

/**
 * zod's `locales` namespace: English only. The other ~50 locales were 246 KB of the 656 KB zod
 * bundle that every start compiled; the tool's messages are English and nothing calls
 * `z.config(z.locales.xx())`.
 */
const englishOnly = {
  name: 'zod-english-only',
  resolveId(id, importer) {
    if (id === '../locales/index.js' && importer && /[\\/]zod[\\/]v4[\\/]/.test(importer)) return { id: '\0zod-locales' };
    return null;
  },
  load(id) {
    if (id !== '\0zod-locales') return null;
    const en = path.join(path.dirname(zodEntry), 'v4/locales/en.js');
    return `export { default as en } from ${JSON.stringify(en)};`;
  },
};
const zodEntry = createRequire(path.join(core, 'package.json')).resolve('zod');

for (const file of readdirSync(vendor).filter((f) => f.endsWith('.js'))) {
  const stub = path.join(vendor, file);
  const out = `${stub}.bundle`;
  // From the source's re-export, so that running this again (tsc -b leaves a bundled file alone) rebundles the package.
  const input = path.join(core, 'src/vendor', file.replace(/\.js$/, '.ts'));
  // typescript: cosmiconfig loads it only for .ts rc files, from the user's install.
  const bundle = await build({ input, external: ['typescript'], plugins: [englishOnly], platform: 'node', write: false, output: { format: 'esm', codeSplitting: false }, logLevel: 'warn' });
  const chunk = bundle.output[0];
  writeFileSync(out, `${banner(Object.keys(chunk.modules))}\n${chunk.code}`);
  renameSync(out, stub);
  // tsc's map describes the re-export, not the bundle.
  rmSync(`${stub}.map`, { force: true });
}

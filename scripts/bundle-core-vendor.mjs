#!/usr/bin/env node
// After tsc: replaces packages/core/dist/vendor/zod.js (a re-export of zod) with zod bundled into
// that one file, which loads in about half the time of zod's own ~95 modules. Same code, same
// single instance (core is zod's only importer at run time; plugins use core's `z`).
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const core = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../packages/core');
const entry = createRequire(path.join(core, 'package.json')).resolve('zod');
const target = path.join(core, 'dist/vendor/zod.js');
const zodRoot = path.dirname(createRequire(entry).resolve('zod/package.json'));
const { version } = JSON.parse(readFileSync(path.join(zodRoot, 'package.json'), 'utf8'));
const banner = `/*! zod ${version}, bundled. ${readFileSync(path.join(zodRoot, 'LICENSE'), 'utf8').trim().replace(/\*\//g, '* /')} */`;
await build({
  input: entry.replace(/\.cjs$/, '.js'),
  output: { file: target, format: 'esm', codeSplitting: false, banner },
  logLevel: 'warn',
});
// tsc's map describes the re-export, not the bundle.
rmSync(`${target}.map`, { force: true });

#!/usr/bin/env node
// Keeps the code base in pieces a newcomer can read: no source file in packages/core/src over
// MAX_FILE_LINES lines, and no function (declaration, method, arrow or expression) in any
// package's or plugin's source over MAX_FUNCTION_LINES lines. Prints every offender and exits 1.
// `--report` lists the largest files and functions whether or not they pass.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const MAX_FILE_LINES = 450;
const MAX_FUNCTION_LINES = 100;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const report = process.argv.includes('--report');

function sources(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sources(full));
    else if (/\.(ts|mts|cts)$/.test(name) && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function srcDirs() {
  const dirs = [];
  for (const group of ['packages', 'plugins']) {
    for (const name of readdirSync(path.join(root, group))) {
      const src = path.join(root, group, name, 'src');
      try {
        if (statSync(src).isDirectory()) dirs.push(src);
      } catch {}
    }
  }
  return dirs;
}

function functionName(node, sf) {
  if (node.name) return node.name.getText(sf);
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(sf);
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(sf);
  if (parent && ts.isPropertyDeclaration(parent)) return parent.name.getText(sf);
  return '(anonymous)';
}

function functions(file) {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = [];
  const visit = (node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      found.push({ name: functionName(node, sf), line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return { lines: text.split('\n').length - (text.endsWith('\n') ? 1 : 0), found };
}

const problems = [];
const all = [];
const coreSrc = path.join(root, 'packages/core/src');
for (const dir of srcDirs()) {
  for (const file of sources(dir)) {
    const rel = path.relative(root, file);
    const { lines, found } = functions(file);
    if (file.startsWith(coreSrc + path.sep) && lines > MAX_FILE_LINES) {
      problems.push(`${rel}: ${lines} lines (at most ${MAX_FILE_LINES} in packages/core/src)`);
    }
    for (const f of found) {
      all.push({ where: `${rel}:${f.line} ${f.name}`, lines: f.lines });
      if (f.lines > MAX_FUNCTION_LINES) problems.push(`${rel}:${f.line}: function ${f.name} is ${f.lines} lines (at most ${MAX_FUNCTION_LINES})`);
    }
    all.push({ where: rel, lines, file: true });
  }
}

if (report) {
  const top = (list) => list.sort((a, b) => b.lines - a.lines).slice(0, 15).map((x) => `  ${String(x.lines).padStart(5)}  ${x.where}`).join('\n');
  console.log(`largest files:\n${top(all.filter((x) => x.file))}\nlongest functions:\n${top(all.filter((x) => !x.file))}`);
}
if (problems.length) {
  console.error(`structure check: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.error('structure check: ok');

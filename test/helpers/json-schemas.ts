/**
 * The JSON Schemas of the `--json` documents (docs/schemas/), compiled once with Ajv in strict
 * mode: a test checks a real output against the schema its command documents.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { REPO_ROOT } from './cli.js';

export const SCHEMA_DIR = path.join(REPO_ROOT, 'docs/schemas');

/** The schema files' names without `.schema.json`: run, list, verify, ... */
export const SCHEMA_NAMES = readdirSync(SCHEMA_DIR)
  .filter((f) => f.endsWith('.schema.json'))
  .map((f) => f.slice(0, -'.schema.json'.length))
  .sort();

const ajv = new Ajv2020({ strict: true, allErrors: true });
const validators = new Map<string, ValidateFunction>();

export function schemaValidator(name: string): ValidateFunction {
  let validate = validators.get(name);
  if (!validate) {
    const file = path.join(SCHEMA_DIR, `${name}.schema.json`);
    validate = ajv.compile(JSON.parse(readFileSync(file, 'utf8')) as object);
    validators.set(name, validate);
  }
  return validate;
}

/** Throws, naming each mismatch by its JSON pointer, unless `value` matches docs/schemas/<name>.schema.json. */
export function expectSchema(name: string, value: unknown): void {
  const validate = schemaValidator(name);
  if (!validate(value)) {
    const problems = (validate.errors ?? []).map((e) => `  ${e.instancePath || '(root)'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
    throw new Error(`output does not match docs/schemas/${name}.schema.json:\n${problems.join('\n')}\n${JSON.stringify(value, null, 2).slice(0, 3000)}`);
  }
}

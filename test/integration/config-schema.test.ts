/**
 * `config schema` prints the rc file's JSON Schema: the README's example rc and every example in
 * examples/ pass it, a typo'd key or a wrong type fails it, and docs/schemas/rc.schema.json (what
 * editors point at) is the same document.
 */
import { createRequire } from 'node:module';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli } from '../helpers/cli.js';

// The YAML parser the rc loader itself uses (through cosmiconfig).
const requireFromCore = createRequire(createRequire(path.join(REPO_ROOT, 'packages/core/package.json')).resolve('cosmiconfig'));
const yaml = requireFromCore('js-yaml') as { load(text: string): unknown };

let schema: Record<string, unknown>;
let validate: ValidateFunction;

function problems(value: unknown): string[] {
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message} ${JSON.stringify(e.params)}`);
}

beforeAll(async () => {
  const r = await runCli(['config', 'schema'], { cwd: REPO_ROOT });
  expect(r.code, r.stderr).toBe(0);
  schema = r.json();
  validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
});

describe('config schema', () => {
  it('accepts the README example and every example rc file', async () => {
    const readme = await fsp.readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const block = readme.match(/```yaml\n(backupRoot:[\s\S]*?)```/);
    expect(block, 'the README has an example rc block').not.toBeNull();
    expect(problems(yaml.load(block![1]!))).toEqual([]);
    const examples = await fsp.readdir(path.join(REPO_ROOT, 'examples'));
    expect(examples.length).toBeGreaterThan(0);
    for (const name of examples) {
      const rc = yaml.load(await fsp.readFile(path.join(REPO_ROOT, 'examples', name, '.sutazai-backuprc'), 'utf8'));
      expect(problems(rc), name).toEqual([]);
    }
  });

  it('rejects a typo\'d key, at the top and inside a profile, and a wrong type', () => {
    const good = { backupRoot: './backups', sources: { configs: { use: 'files', paths: ['./config'] } }, profiles: { daily: { schedule: '0 2 * * *', sources: '*' } } };
    expect(problems(good)).toEqual([]);
    expect(problems({ ...good, retenion: { daily: 7 } }).join('\n')).toMatch(/must NOT have additional properties .*"additionalProperty":"retenion"/);
    expect(problems({ ...good, profiles: { daily: { schedul: '0 2 * * *' } } }).join('\n')).toMatch(/\/profiles\/daily .*"additionalProperty":"schedul"/);
    expect(problems({ ...good, concurrency: 'two' }).join('\n')).toMatch(/\/concurrency must be integer/);
    expect(problems({ ...good, sources: { configs: { paths: ['./config'] } } }).join('\n')).toMatch(/\/sources\/configs must have required property 'use'/);
    expect(problems({ sources: good.sources }).join('\n')).toMatch(/must have required property 'backupRoot'/);
  });

  it('is what docs/schemas/rc.schema.json holds, for editors to point at', async () => {
    expect(JSON.parse(await fsp.readFile(path.join(REPO_ROOT, 'docs/schemas/rc.schema.json'), 'utf8'))).toEqual(schema);
  });
});

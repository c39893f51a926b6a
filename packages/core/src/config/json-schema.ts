import { z } from '../vendor/zod.js';
import { topLevelSchema } from './schema.js';

/**
 * The rc file's JSON Schema (draft 2020-12), derived from the schema the loader checks with, so
 * that editors flag a typo'd key or a wrong type while the file is written. It describes the
 * file's own keys; each plugin's options are checked when the config loads (`config validate`),
 * so a plugin entry here only needs its `use`. Values are as written, before `${VAR}` is read.
 */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(topLevelSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  const { $schema, ...rest } = unionTypesAsAnyOf(schema) as Record<string, unknown>;
  return {
    $schema,
    $id: 'https://github.com/sutazai/sutazai-backup/docs/schemas/rc.schema.json',
    title: '.sutazai-backuprc',
    description: "sutazai-backup's rc file (docs/design.md Part A). Plugin options are checked by `sutazai-backup config validate`.",
    ...rest,
  };
}

/** `type: ["number", "string"]` as `anyOf` of each: the same schema, which strict validators (Ajv's strictTypes) accept too. */
function unionTypesAsAnyOf(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(unionTypesAsAnyOf);
  if (!node || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) out[key] = unionTypesAsAnyOf(value);
  if (Array.isArray(out.type) && out.type.length > 1 && !out.anyOf) {
    out.anyOf = out.type.map((type: unknown) => ({ type }));
    delete out.type;
  }
  return out;
}

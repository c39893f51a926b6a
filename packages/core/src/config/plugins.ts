import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BackupError, ConfigError, type ConfigIssue } from '../errors.js';
import type { Plugin, PluginFactory, PluginKind, SourceRead } from '../plugin.js';
import { retentionPolicySchema } from '../retention.js';
import { joinPath, zodIssues } from '../schema.js';
import { notifierSettingsSchema, sourceSettingsSchema, type PluginEntrySpec } from './schema.js';

/** A loaded plugin, ready to apply. */
export interface PluginEntry {
  /** The rc key path: `sources.app-db`, `plugins[0]`, `encryption`. */
  key: string;
  instance: string;
  kind: PluginKind;
  use: string;
  /** Where the module was loaded from. */
  resolved: string;
  /** The plugin's own options (without `use` and the engine's settings). */
  options: Record<string, unknown>;
  /** Settings the engine handles for every plugin of this kind. */
  settings: Record<string, unknown>;
  plugins: Plugin[];
  /** The local paths a source archives, when its plugin says (`defineSource`'s `reads`). */
  reads?: SourceRead[];
}

/** Where plugins resolve from, and what their issues are collected into. */
export interface PluginLoading {
  /** The rc file's folder first (relative `use:` paths start there), then the other roots. */
  roots: string[];
  configDir: string;
  issues: ConfigIssue[];
}

/** Settings that the engine handles itself, per kind of plugin; they are not passed to the plugin. */
const engineSettings: Record<PluginKind, string[]> = {
  source: ['timeout', 'priority'],
  destination: ['retention', 'prefix'],
  notifier: ['on', 'throttle'],
  encryption: [],
  plugin: [],
};

const kindLabel: Record<PluginKind, string> = {
  source: 'a source',
  destination: 'a destination',
  notifier: 'a notifier',
  encryption: 'an encryption',
  plugin: 'a hook-only',
};

/** The package a `use:` value names: a short name maps to @sutazai/backup-plugin-<name>. */
export function pluginPackageName(use: string): string {
  if (use.startsWith('@') || use.includes('/')) return use;
  return `@sutazai/backup-plugin-${use}`;
}

/** Resolves `use:` from each root in turn: the rc file's folder, the working directory, then the tool's own. */
export function resolvePlugin(use: string, roots: readonly string[]): string {
  if (use.startsWith('.') || path.isAbsolute(use)) {
    const file = path.resolve(roots[0]!, use);
    if (!existsSync(file)) throw new Error(`plugin file ${file} does not exist`);
    return file;
  }
  const pkg = pluginPackageName(use);
  for (const root of roots) {
    try {
      return createRequire(path.join(root, 'noop.js')).resolve(pkg);
    } catch {
      // try the next root
    }
  }
  throw new BackupError('E_PLUGIN_NOT_FOUND', `plugin "${use}" is not installed: add it with \`npm install ${pkg}\``);
}

/**
 * Loads the plugin an rc entry names and makes its plugins with the entry's options. Every
 * problem is pushed to `loading.issues` under the entry's key; the entry is then undefined.
 */
export async function loadPluginEntry(key: string, instance: string, kind: PluginKind, entry: PluginEntrySpec, loading: PluginLoading): Promise<PluginEntry | undefined> {
  const { issues } = loading;
  const { use, ...rest } = entry;
  const split = splitSettings(key, kind, rest, issues);
  if (!split) return undefined;
  const imported = await importFactory(key, use, kind, loading);
  if (!imported) return undefined;
  const { factory, resolved } = imported;
  if (kind === 'source' && 'timeout' in split.options && !acceptsOption(factory, 'timeout')) delete split.options.timeout;
  let checked: unknown = split.options;
  if (factory.optionsSchema) {
    const r = factory.optionsSchema.safeParse(split.options);
    if (!r.success) {
      issues.push(...zodIssues(r.error, key));
      return undefined;
    }
    checked = r.data;
  }
  const plugins = makePlugins(key, use, factory, split.options, issues);
  if (!plugins) return undefined;
  const reads = kind === 'source' && factory.reads ? factory.reads(checked, { configDir: loading.configDir }) : undefined;
  return { key, instance, kind: factory.kind ?? kind, use, resolved, options: split.options, settings: split.settings, plugins, ...(reads ? { reads } : {}) };
}

/** Separates the engine's settings of an entry (a destination's `retention`, a notifier's `on`) from the plugin's options, and checks them. */
function splitSettings(
  key: string,
  kind: PluginKind,
  rest: Record<string, unknown>,
  issues: ConfigIssue[],
): { settings: Record<string, unknown>; options: Record<string, unknown> } | undefined {
  const settings: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) (engineSettings[kind].includes(k) ? settings : options)[k] = v;
  if ('prefix' in settings && typeof settings.prefix !== 'string') {
    issues.push({ path: `${key}.prefix`, message: 'expected a string such as "sutazai-prod-1/" (or "" for none)' });
    return undefined;
  }
  if ('retention' in settings) {
    const r = retentionPolicySchema.safeParse(settings.retention);
    if (!r.success) {
      issues.push(...zodIssues(r.error, `${key}.retention`));
      return undefined;
    }
    settings.retention = r.data;
  }
  if (kind === 'source') {
    const r = sourceSettingsSchema.safeParse(settings);
    if (!r.success) {
      issues.push(...zodIssues(r.error, key));
      return undefined;
    }
    Object.assign(settings, r.data);
    // A source plugin with a `timeout` option of its own (command's, in seconds, for its check) gets it too.
    if (r.data.timeout !== undefined) options.timeout = r.data.timeout / 1000;
  }
  if (kind === 'notifier') {
    const r = notifierSettingsSchema.safeParse(settings);
    if (!r.success) {
      issues.push(...zodIssues(r.error, key));
      return undefined;
    }
    settings.on = r.data.on;
    if (r.data.throttle !== undefined) settings.throttle = r.data.throttle;
  }
  return { settings, options };
}

/** Whether a plugin's options schema (a zod object) has `key`. */
function acceptsOption(factory: PluginFactory<unknown>, key: string): boolean {
  const shape = (factory.optionsSchema as { shape?: Record<string, unknown> } | undefined)?.shape;
  return Boolean(shape && key in shape);
}

/** Resolves and imports the module `use` names; its default export must be a plugin factory (or a plugin) of the right kind. */
async function importFactory(key: string, use: string, kind: PluginKind, loading: PluginLoading): Promise<{ factory: PluginFactory<unknown>; resolved: string } | undefined> {
  const { issues } = loading;
  let resolved: string;
  try {
    resolved = resolvePlugin(use, loading.roots);
  } catch (err) {
    issues.push({ path: `${key}.use`, message: (err as Error).message });
    return undefined;
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
  } catch (err) {
    issues.push({ path: `${key}.use`, message: `plugin "${use}" failed to load from ${resolved}: ${(err as Error).message}` });
    return undefined;
  }
  const exported = (mod.default ?? mod) as unknown;
  let factory: PluginFactory<unknown>;
  if (typeof exported === 'function') factory = exported as PluginFactory<unknown>;
  else if (isPlugin(exported)) factory = () => exported;
  else {
    issues.push({ path: `${key}.use`, message: `"${use}" does not export a plugin (a default-exported factory or { name, apply })` });
    return undefined;
  }
  if (factory.kind && factory.kind !== kind && !(kind === 'plugin')) {
    issues.push({
      path: `${key}.use`,
      message: `"${use}" is ${kindLabel[factory.kind]} plugin; it cannot be used here (expected ${kindLabel[kind]} plugin)`,
    });
    return undefined;
  }
  return { factory, resolved };
}

/** Calls the factory; what it throws, or returns that is not a plugin, is an issue at `key`. */
function makePlugins(key: string, use: string, factory: PluginFactory<unknown>, options: Record<string, unknown>, issues: ConfigIssue[]): Plugin[] | undefined {
  let made: ReturnType<PluginFactory<unknown>>;
  try {
    made = factory(options);
  } catch (err) {
    if (err instanceof ConfigError) {
      issues.push(...err.issues.map((i) => ({ path: i.path.startsWith(key) ? i.path : joinPath(key, i.path ? i.path.split('.').slice(1) : []), message: i.message })));
    } else {
      issues.push({ path: key, message: (err as Error).message });
    }
    return undefined;
  }
  const plugins = (Array.isArray(made) ? made : [made]).filter((p): p is Plugin => Boolean(p));
  if (plugins.some((p) => !isPlugin(p))) {
    issues.push({ path: `${key}.use`, message: `"${use}" returned something that is not a plugin ({ name, apply })` });
    return undefined;
  }
  return plugins;
}

function isPlugin(value: unknown): value is Plugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Plugin).name === 'string' &&
    typeof (value as Plugin).apply === 'function'
  );
}

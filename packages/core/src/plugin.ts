import type { z } from 'zod';
import { PrefixedDestination, type Destination, type DestinationTraits } from './destination.js';
import { toPluginError } from './errors.js';
import type {
  ArtifactSpec,
  NotifyContext,
  RestoreIntoContext,
  RestoreTestContext,
  RunContext,
  TapHooks,
  VerifyContext,
} from './hooks.js';
import type { Logger } from './log.js';
import { isTransientDelivery, type Notification } from './notify.js';
import { withRetry, type RetryOptions } from './replicate.js';
import type { RetentionPolicy } from './retention.js';
import { parseOptions } from './schema.js';
import type { SecretRegistry } from './secrets.js';

export type PluginKind = 'source' | 'destination' | 'notifier' | 'encryption' | 'plugin';

/** What the engine tells a plugin when it applies it. */
export interface PluginContext {
  /** The instance name: the key under `sources:`, `destinations:` or `notify:`, or the plugin's name. */
  readonly instance: string;
  /** The rc key path of this plugin's options: `sources.app-db`. */
  readonly key: string;
  readonly kind: PluginKind;
  readonly configFile: string | undefined;
  /** Relative paths in options resolve from here (the rc file's folder). */
  readonly configDir: string;
  readonly backupRoot: string;
  readonly host: string;
  readonly logger: Logger;
  /** Register values that must never be printed (passwords read at run time, tokens). */
  readonly secrets: SecretRegistry;
  /** Settings the engine handles for every plugin of a kind (a destination's `retention`, a notifier's `on`). */
  readonly settings: Readonly<Record<string, unknown>>;
}

/** A plugin: a name, and `apply`, which taps the engine's hooks. */
export interface Plugin {
  name: string;
  kind?: PluginKind;
  apply(hooks: TapHooks, ctx: PluginContext): void | Promise<void>;
}

/** A plugin package's default export: options in, plugin out. */
export interface PluginFactory<Options = unknown> {
  (options: Options): Plugin | Plugin[] | null | false | undefined;
  /** When present, the rc options are checked against it at load time, before anything runs. */
  optionsSchema?: z.ZodType;
  kind?: PluginKind;
  /** A source's local reads (see `SourceDefinition.reads`), from its checked options. */
  reads?: (options: unknown, ctx: { configDir: string }) => SourceRead[];
}

/**
 * Local paths a source archives, under the option key that names them. Core knows no plugin's
 * options; with this it refuses a backupRoot inside what a source reads (every run would archive
 * the snapshots before it) when the config loads.
 */
export interface SourceRead {
  /** The option key, relative to the source's options: `paths`, `dataDir`. */
  key: string;
  /** Absolute paths (resolved from `configDir` as the source does). */
  paths: string[];
  /** Whether the source leaves this path out (an `exclude` glob): such a backupRoot is fine. */
  skips?: (absPath: string) => boolean;
}

function withSchema<F extends (options: never) => Plugin>(factory: F, schema: z.ZodType, kind: PluginKind) {
  return Object.assign(factory, { optionsSchema: schema, kind });
}

export interface SourceContext extends PluginContext {
  readonly run: RunContext;
}

export interface SourceDefinition<S extends z.ZodType> {
  /** The plugin name (the `use:` short name). */
  name: string;
  options: S;
  /** Says what to back up this run: one or more artifacts. Streams open later, under the engine's control. */
  collect(ctx: SourceContext, options: z.output<S>): Promise<ArtifactSpec[]> | ArtifactSpec[];
  /** Deep checks of this source's artifacts beyond size, sha256 and decoding. */
  verify?(ctx: VerifyContext & { plugin: PluginContext }, options: z.output<S>): Promise<void> | void;
  /**
   * `restore --into`: put an artifact back into a live service. Resolve with false for an artifact
   * this restore leaves out (not the database `--database` picked).
   */
  restoreInto?(ctx: RestoreIntoContext & { plugin: PluginContext }, options: z.output<S>): Promise<void | boolean>;
  /** Restore an artifact into a sandbox and check it. */
  restoreTest?(ctx: RestoreTestContext & { plugin: PluginContext }, options: z.output<S>): Promise<void> | void;
  /** The local folders this source archives (see `SourceRead`), for the config check of backupRoot. */
  reads?(options: z.output<S>, ctx: { configDir: string }): SourceRead[];
}

/** Defines a source plugin: the factory checks options and taps collect, verify, restore and restoreTest. */
export function defineSource<S extends z.ZodType>(def: SourceDefinition<S>): PluginFactory<z.input<S>> {
  const factory = (raw: z.input<S>): Plugin => {
    const options = parseOptions(def.options, raw, def.name);
    return {
      name: def.name,
      kind: 'source',
      apply(hooks, plugin) {
        const mine = (source: string) => source === plugin.instance;
        hooks.collect.tapPromise(plugin.key, async (ctx) => {
          if (!ctx.run.sources.includes(plugin.instance)) return;
          let specs: ArtifactSpec[];
          try {
            specs = await def.collect({ ...plugin, run: ctx.run }, options);
          } catch (err) {
            if (!ctx.sourceFailed) throw err;
            // This source fails alone (the others are still collected), unless the profile is failFast.
            ctx.sourceFailed(plugin.instance, toPluginError(err, plugin.key, 'collect', 'E_SOURCE'));
            return;
          }
          for (const spec of specs) ctx.addArtifact(plugin.instance, def.name, spec);
        });
        if (def.verify) {
          const verify = def.verify;
          hooks.verify.tapPromise(plugin.key, async (ctx) => {
            if (mine(ctx.artifact.source)) await verify({ ...ctx, plugin }, options);
          });
        }
        if (def.restoreInto) {
          const restoreInto = def.restoreInto;
          hooks.restore.tapPromise(plugin.key, async (ctx) => {
            if (!mine(ctx.artifact.source)) return undefined;
            const restored = await restoreInto({ ...ctx, plugin }, options);
            return restored !== false;
          });
        }
        if (def.restoreTest) {
          const restoreTest = def.restoreTest;
          hooks.restoreTest.tapPromise(plugin.key, async (ctx) => {
            if (mine(ctx.artifact.source)) await restoreTest({ ...ctx, plugin }, options);
          });
        }
      },
    };
  };
  const made = withSchema(factory, def.options, 'source');
  if (def.reads) {
    const reads = def.reads;
    return Object.assign(made, { reads: (options: unknown, ctx: { configDir: string }) => reads(options as z.output<S>, ctx) });
  }
  return made;
}

export interface DestinationDefinition<S extends z.ZodType> {
  name: string;
  options: S;
  traits: DestinationTraits | ((options: z.output<S>) => DestinationTraits);
  /**
   * Makes the Destination; connect lazily, on first use. The engine adds the `prefix` setting
   * (default `<host>/`) on top, so the destination sees keys relative to its own root.
   */
  create(options: z.output<S>, ctx: PluginContext): Destination;
}

export function defineDestination<S extends z.ZodType>(def: DestinationDefinition<S>): PluginFactory<z.input<S>> {
  const factory = (raw: z.input<S>): Plugin => {
    const options = parseOptions(def.options, raw, def.name);
    return {
      name: def.name,
      kind: 'destination',
      apply(hooks, plugin) {
        hooks.destinations.tap(plugin.key, (registry) => {
          registry.add({
            name: plugin.instance,
            plugin: def.name,
            destination: new PrefixedDestination(
              def.create(options, plugin),
              typeof plugin.settings.prefix === 'string' ? plugin.settings.prefix : `${plugin.host}/`,
            ),
            traits: typeof def.traits === 'function' ? def.traits(options) : def.traits,
            retention: plugin.settings.retention as RetentionPolicy | undefined,
          });
        });
      },
    };
  };
  return withSchema(factory, def.options, 'destination');
}

/** Delivery attempts of a notification: the first, then retries after about 0.5, 1 and 2 s. */
export const NOTIFY_RETRY: RetryOptions = { retries: 3, baseDelayMs: 500 };

export interface NotifierDefinition<S extends z.ZodType> {
  name: string;
  options: S;
  /**
   * Called once when the engine applies the plugin: register secrets the options hold under
   * names that do not look secret (a Slack webhook URL) with `ctx.secrets.add`.
   */
  setup?(ctx: PluginContext, options: z.output<S>): void | Promise<void>;
  /**
   * Delivers one notification (a run's outcome with its report, or a health condition that began
   * or cleared). The engine has already applied the channel's `on` and `throttle`. Throwing
   * marks this channel failed after the retries; it never fails the backup or stops another channel.
   * Throw a BackupError with `details.status` (see `deliverHttp`) so a 4xx answer is not retried,
   * or with `details.retryable: false` for any other failure that will not change.
   */
  send(notification: Notification, ctx: NotifyContext & { plugin: PluginContext }, options: z.output<S>): Promise<void>;
}

/** Defines a notification channel: the factory checks options and taps notify with retries. */
export function defineNotifier<S extends z.ZodType>(def: NotifierDefinition<S>): PluginFactory<z.input<S>> {
  const factory = (raw: z.input<S>): Plugin => {
    const options = parseOptions(def.options, raw, def.name);
    return {
      name: def.name,
      kind: 'notifier',
      async apply(hooks, plugin) {
        await def.setup?.(plugin, options);
        hooks.notify.tapPromise(plugin.key, async (ctx) => {
          let attempts = 0;
          const sendCtx = { ...ctx, plugin, logger: ctx.logger.child({ plugin: plugin.key }) };
          try {
            await withRetry(
              async () => {
                attempts++;
                await def.send(ctx.notification, sendCtx, options);
              },
              { ...NOTIFY_RETRY, logger: sendCtx.logger, what: `${plugin.key}: delivery`, retryable: isTransientDelivery },
            );
          } finally {
            ctx.recordAttempts(plugin.key, attempts);
          }
        });
      },
    };
  };
  return withSchema(factory, def.options, 'notifier');
}

export interface PluginDefinition<S extends z.ZodType> {
  name: string;
  options: S;
  kind?: PluginKind;
  apply(hooks: TapHooks, ctx: PluginContext, options: z.output<S>): void | Promise<void>;
}

/** Defines a plugin that only taps hooks (or an encryption plugin), with checked options. */
export function definePlugin<S extends z.ZodType>(def: PluginDefinition<S>): PluginFactory<z.input<S>> {
  const kind = def.kind ?? 'plugin';
  const factory = (raw: z.input<S>): Plugin => {
    const options = parseOptions(def.options, raw, def.name);
    return { name: def.name, kind, apply: (hooks, ctx) => def.apply(hooks, ctx, options) };
  };
  return withSchema(factory, def.options, kind);
}

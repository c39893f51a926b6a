// The public API of @sutazai/backup-core: the engine, and what plugins and the command line use.
// Everything else is internal; tests reach it through src/.

// The engine and its commands' results.
export { Engine, type EngineOptions, type SnapshotSummary } from './engine.js';
export type { CheckResult } from './checks.js';
export type { RunOptions } from './run/backup-run.js';
export type { ArtifactVerification, SnapshotVerification, VerifyOptions, VerifyResult } from './verify.js';
export type { RestoreOptions, RestoreResult } from './restore-command.js';
export type { LsEntry, LsOptions, LsResult } from './ls-command.js';
export { configJsonSchema } from './config/json-schema.js';
export type { RecoveryResult, RecoveryStep } from './recover.js';
export type { DestinationSummary, HistoryReport, ProfileSummary } from './history-report.js';
export type { RestoredArtifact } from './restore.js';
export type { ArtifactRestoreTest, RestoreTestResult } from './restore-test.js';
export type { StatusResult } from './health.js';
export type { ForeignFolder, ForgetResult, IncompleteSnapshot, PruneResult } from './pruner.js';
export { suspectReason, type SuspectSnapshot, type VerifyFailure, type VerifyFailureKind } from './suspects.js';
export type { HistoryRecord } from './history.js';
export { newReport, type DestinationResult, type ReportArtifact, type ReportError, type RunReport, type StageName, type StageResult } from './report.js';

// Configuration.
export { loadConfig, type LoadConfigOptions, type PluginEntry, type ProfileConfig, type ResolvedConfig } from './config.js';
export { DEFAULT_RETENTION, type RetentionDecision, type RetentionPolicy } from './retention.js';
export { cronToOnCalendar, parseCron, type CronField, type CronSchedule } from './schedule.js';

// The plugin API.
export {
  defineDestination,
  defineNotifier,
  definePlugin,
  defineSource,
  NOTIFY_RETRY,
  type DestinationDefinition,
  type NotifierDefinition,
  type Plugin,
  type PluginContext,
  type PluginDefinition,
  type PluginFactory,
  type PluginKind,
  type SourceContext,
  type SourceDefinition,
  type SourceRead,
} from './plugin.js';
export type {
  ArchiveContext,
  ArchiveTransform,
  ArtifactAccess,
  ArtifactProgram,
  ArtifactSource,
  ArtifactSpec,
  ArtifactStream,
  CollectContext,
  CommitContext,
  DecodeContext,
  DecoderAlternatives,
  DestinationRegistry,
  FileArtifactSpec,
  HookName,
  Hooks,
  ManifestCheckContext,
  ManifestPurpose,
  NotifyContext,
  OpenArtifactContext,
  PruneContext,
  RegisteredDestination,
  ReplicateContext,
  RestoreIntoContext,
  RestoreTestContext,
  RunContext,
  SettledContext,
  TapHooks,
  TapOutcome,
  TreeArtifactSpec,
  VerifyContext,
} from './hooks.js';
export { z } from './schema.js';
export { BackupError, ConfigError, ExitCode, exitCodeOf, isBackupError, toPluginError, type BackupErrorOptions, type ConfigIssue, type ErrorCode } from './errors.js';
export { COMMIT_STAGE_AUTHENTICATE, type IntegrityAuthentication } from './integrity.js';
export { TOOL_NAME, CORE_VERSION } from './version.js';

// Destinations and repositories.
export { checkKey, getRange, LocalDestination, type Destination, type DestinationTraits, type ObjectInfo, type PutInfo, type StorageUsage } from './destination.js';
export type {
  ArtifactInput,
  ReadableArtifact,
  ReaderUse,
  RepositoryFormat,
  SnapshotListing,
  SnapshotRepository,
  SnapshotWriter,
  StoredArtifact,
} from './repository-format.js';
export { joinInside, manifestAuthenticatedBytes, type ArtifactRecord, type Compression, type EncryptionInfo, type Manifest } from './manifest.js';
export { parseSnapshotId, type ParsedSnapshotId } from './snapshot-id.js';

// Notifications.
export {
  deliverHttp,
  healthNotification,
  notificationFacts,
  runNotification,
  type HealthChange,
  type HealthNotification,
  type HttpDelivery,
  type Notification,
  type NotificationResult,
  type NotifyEvent,
  type RunNotification,
} from './notify.js';

// Helpers for plugins: programs, streams, files, secrets, logs.
export {
  childEnvironment,
  feedChild,
  launchChild,
  OutputTail,
  ProgramStream,
  runChild,
  runChildSync,
  runProgram,
  startChild,
  STDERR_TAIL_BYTES,
  type Child,
  type ChildEnv,
  type ChildOptions,
  type ChildOutcome,
  type LaunchedChild,
  type LaunchOptions,
} from './child.js';
export type { ProgramOutcome, ProgramSpec } from './pipeline/program.js';
export { chunkDecoderStream, chunkEncoderStream, type ChunkEncoder } from './pipeline/chunk-stages.js';
export type { ChunkDecoder } from './pipeline/decoder.js';
export type { ThreadDecoderSpec } from './pipeline/follow-verify.js';
export type { TreeStats } from './pipeline/tar-extract.js';
export { extractTree, type ExtractOptions } from './pipeline/tree-writer.js';
export type { TreeEntry } from './pipeline/tar-pack.js';
export { expandHome, writeFileAtomic } from './fs.js';
export { isSecretKey, maskSecretKeys, quoteReply, secrets, SecretRegistry } from './secrets.js';
export { createLogger, silentLogger, type LogFields, type Logger, type LoggerOptions, type LogLevel } from './log.js';
export { createProgress, formatBytes, type Progress } from './progress.js';
// zstd as core uses it (the README's zstd section).
export { zstdBackend, zstdCodec, type ZstdBackend, type ZstdCodec, type ZstdStreamOptions } from './zstd/index.js';

// Unattended operation: the daemon's scheduler, missed runs, credentials, commands that decrypt nothing.
export { fireTimesBetween, nextFireTime, type ScheduleZone } from './schedule.js';
export {
  realClock,
  Scheduler,
  type JobOutcome,
  type JobStart,
  type ScheduledJob,
  type ScheduleStore,
  type SchedulerClock,
  type SchedulerOptions,
} from './scheduler.js';
export { ScheduleStateStore, type ScheduledJobState, type ScheduleState } from './schedule-state.js';
export { schedulingOptions, healthSchedule, DEFAULT_SCHEDULED_WAIT_MS, type SchedulingOptions } from './scheduling-config.js';
export { recordMissedRun, type MissedRun } from './missed-run.js';
export { readCredential } from './credentials.js';
export { encryptionNotChecked } from './deferred-secrets.js';
export { RunLock, type LockWait } from './lock.js';
export { parseInterval } from './config.js';
export { isTransient, retryingDestination, withRetry, DEFAULT_RETRY, type RetryOptions } from './retry.js';

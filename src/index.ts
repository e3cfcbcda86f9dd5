export { Replicator } from './replicator.js';
export type { KickOptions, StopOptions, ReplicatorStatus, SyncStatus } from './replicator.js';
export { MemoryControlStore } from './store/control-store.js';
export type { ControlStore, MemoryControlStoreOptions, RunRecord } from './store/control-store.js';
export type { Metrics, SyncMetrics, WaitForAppliedOptions } from './operate.js';
export type { MeterLike, MetricAttributes } from './telemetry.js';
export { PostgresControlStore } from './store/postgres-store.js';
export type { PostgresControlStoreOptions } from './store/postgres-store.js';
export type { ValidationResult, TableValidation, TableDifference, TableRepair, ValidateOptions } from './sync/validate.js';
export { PgferryError, isPgferryError } from './errors.js';
export type { PgferryErrorCode, ConfigIssue } from './errors.js';
export type { ReplicatorOptions, DatabaseConfig, ForeignDatabaseConfig, AnyDatabaseConfig, SyncConfig } from './config.js';
export { defineConfig } from './define-config.js';
export type { PgferryConfig, StoreConfig } from './define-config.js';
export type {
  ReplicatorEvents,
  SyncStartEvent,
  SyncErrorEvent,
  ConflictEvent,
  RowsAppliedEvent,
  CopyProgressEvent,
  ValidateProgressEvent,
} from './events.js';
export type {
  RowKey,
  Row,
  Role,
  TransformContext,
  TableTransform,
  Conflict,
  Resolution,
  ConflictResolver,
  ConflictStrategy,
  ExceptionContext,
  ExceptionHandler,
  TableResult,
  RunResult,
  RunReason,
  ConflictRecord,
} from './types.js';

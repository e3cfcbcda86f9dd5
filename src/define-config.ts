/**
 * The configuration file of the `pgferry` command: its schema and `defineConfig()`, the typed
 * identity function a `pgferry.config.mjs` wraps its default export in for editor help.
 * Databases and syncs are checked by the same schemas as `addDatabase()` and `addSync()`;
 * a bad field is CONFIG_INVALID naming its whole path (`syncs.shop.onetimecopy`).
 */
import { z } from 'zod';
import { anyDatabaseConfigSchema, databaseConfigSchema, parseConfig, syncConfigSchema, type AnyDatabaseConfig, type SyncConfig } from './config.js';
import { PgferryError, type ConfigIssue } from './errors.js';
import type { ControlStore } from './store/control-store.js';

const name = z.string().min(1, 'must not be empty').max(63, 'must be at most 63 characters');

const isStore = (v: unknown): v is ControlStore =>
  typeof v === 'object' && v !== null && typeof (v as ControlStore).recordRun === 'function';

const storeKind = <K extends 'memory' | 'postgres'>(kind: K) => z.literal(kind, { error: "must be 'memory' or 'postgres'" });

const postgresStoreSchema = z.strictObject({
  kind: storeKind('postgres'),
  /** Keep the history in this database of `databases` (same connection). */
  database: name.optional(),
  /** Or in a database of its own. */
  connection: databaseConfigSchema.optional(),
  /** Schema of the store's tables (default `pgferry_control`). */
  schema: name.optional(),
  keepRuns: z.number().int().positive().optional(),
  keepConflicts: z.number().int().positive().optional(),
});

/** Where the command keeps run history: in memory (the default), in PostgreSQL, or a store object. */
const storeConfigSchema = z.union([
  z.strictObject({ kind: storeKind('memory') }),
  postgresStoreSchema,
  z.custom<ControlStore>(isStore, { message: "must be { kind: 'memory' }, { kind: 'postgres', database | connection } or a ControlStore" }),
]);

export const pgferryConfigSchema = z.strictObject({
  /** Database name → a connection string, a pg PoolConfig, or `{ pool }`. */
  databases: z.record(name, anyDatabaseConfigSchema).refine((d) => Object.keys(d).length > 0, { message: 'add at least one database' }),
  /** Sync name → its configuration, as for `addSync()`. */
  syncs: z.record(name, syncConfigSchema),
  store: storeConfigSchema.optional(),
  /** Library schema in each database (default `pgferry`). */
  schema: name.optional(),
});

export type StoreConfig = { kind: 'memory' } | z.input<typeof postgresStoreSchema> | ControlStore;

/** The configuration of the `pgferry` command (a `pgferry.config.mjs` default export). */
export interface PgferryConfig {
  databases: Record<string, AnyDatabaseConfig>;
  syncs: Record<string, SyncConfig>;
  store?: StoreConfig;
  schema?: string;
}

/**
 * Checks a configuration for the `pgferry` command and returns it unchanged; throws
 * CONFIG_INVALID naming every bad field by its path.
 *
 * @example
 * // pgferry.config.mjs
 * import { defineConfig } from 'pgferry';
 * export default defineConfig({
 *   databases: { a: 'postgres://app:${PGPASSWORD}@db1/shop', b: 'postgres://app:${PGPASSWORD}@db2/shop' },
 *   syncs: { shop: { tables: ['orders'], databases: { a: 'source', b: 'target' } } },
 * });
 */
export function defineConfig<C extends PgferryConfig>(config: C): C {
  const parsed = parseConfig(pgferryConfigSchema, config, 'pgferry config');
  const issues = crossIssues(parsed);
  if (issues.length > 0) {
    throw new PgferryError('CONFIG_INVALID', `Invalid pgferry config: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
  }
  return config;
}

/** What one field cannot check alone: names that must be in `databases`, one store connection. */
function crossIssues(config: z.output<typeof pgferryConfigSchema>): ConfigIssue[] {
  const known = new Set(Object.keys(config.databases));
  const issues: ConfigIssue[] = [];
  for (const [sync, s] of Object.entries(config.syncs)) {
    for (const db of Object.keys(s.databases)) {
      if (!known.has(db)) issues.push({ path: `syncs.${sync}.databases.${db}`, message: 'not a database of databases' });
    }
  }
  const store = config.store;
  if (store && !isStore(store) && store.kind === 'postgres') {
    if ((store.database === undefined) === (store.connection === undefined)) {
      issues.push({ path: 'store', message: 'give either database (a name of databases) or connection' });
    } else if (store.database !== undefined && !known.has(store.database)) {
      issues.push({ path: 'store.database', message: 'not a database of databases' });
    }
  }
  return issues;
}

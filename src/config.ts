/**
 * Configuration schemas. The public option types are `z.input` of these schemas; the
 * replicator works with the parsed `z.output`. Every object is strict, so a misspelled
 * option is an error that names it.
 */
import type pg from 'pg';
import { z } from 'zod';
import { PgferryError, type ConfigIssue } from './errors.js';
import type { ControlStore } from './store/control-store.js';
import type { ConflictResolver, ExceptionHandler, SimpleStrategy } from './types.js';

const identifierish = z.string().min(1, 'must not be empty').max(63, 'must be at most 63 bytes');

export const replicatorOptionsSchema = z.strictObject({
  /** Where configuration and run history live. Default: a new MemoryControlStore. */
  store: z.custom<ControlStore>((v) => typeof v === 'object' && v !== null && typeof (v as ControlStore).recordRun === 'function', {
    message: 'must be a ControlStore (e.g. new MemoryControlStore())',
  }).optional(),
  /** Library schema created in each source database. */
  schema: identifierish.default('pgferry'),
  /** Periodic check of autokick syncs (catches missed notifications), in ms. 0 turns it off. */
  checkIntervalMs: z.number().int().nonnegative().default(60_000),
  /** Background retry backoff. */
  retry: z.strictObject({
    minDelayMs: z.number().int().positive().default(100),
    maxDelayMs: z.number().int().positive().default(30_000),
  }).default({ minDelayMs: 100, maxDelayMs: 30_000 }),
  /** Delay after a notification before an autokick run starts, to coalesce bursts, in ms. */
  autokickDelayMs: z.number().int().nonnegative().default(0),
});
export type ReplicatorOptions = z.input<typeof replicatorOptionsSchema>;
export type ResolvedReplicatorOptions = z.output<typeof replicatorOptionsSchema>;

const poolConfigSchema = z.strictObject({
  connectionString: z.string().optional(),
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  database: z.string().optional(),
  user: z.string().optional(),
  password: z.union([z.string(), z.custom<() => string | Promise<string>>((v) => typeof v === 'function')]).optional(),
  ssl: z.union([z.boolean(), z.record(z.string(), z.unknown())]).optional(),
  application_name: z.string().optional(),
  options: z.string().optional(),
  client_encoding: z.string().optional(),
  keepAlive: z.boolean().optional(),
  keepAliveInitialDelayMillis: z.number().int().nonnegative().optional(),
  statement_timeout: z.union([z.number().int().nonnegative(), z.literal(false)]).optional(),
  lock_timeout: z.number().int().nonnegative().optional(),
  idle_in_transaction_session_timeout: z.number().int().nonnegative().optional(),
  query_timeout: z.number().int().nonnegative().optional(),
  connectionTimeoutMillis: z.number().int().nonnegative().optional(),
  max: z.number().int().positive().optional(),
  min: z.number().int().nonnegative().optional(),
  idleTimeoutMillis: z.number().int().nonnegative().optional(),
  maxUses: z.number().int().positive().optional(),
  maxLifetimeSeconds: z.number().int().nonnegative().optional(),
  allowExitOnIdle: z.boolean().optional(),
});

const callerPoolSchema = z.strictObject({
  pool: z.custom<pg.Pool>((v) => typeof v === 'object' && v !== null && typeof (v as pg.Pool).connect === 'function', {
    message: 'must be a pg.Pool',
  }),
});

/** A connection string, a pg PoolConfig, or `{ pool }` with a caller-owned pg.Pool. */
export const databaseConfigSchema = z.union([
  z.string().min(1, 'connection string must not be empty'),
  callerPoolSchema,
  poolConfigSchema,
]);
export type DatabaseConfig = z.input<typeof databaseConfigSchema>;

const fnSchema = <T>(what: string) => z.custom<T>((v) => typeof v === 'function', { message: `must be ${what}` });

const simpleStrategySchema: z.ZodType<SimpleStrategy> = z.union([
  z.enum(['latest', 'abort', 'skip', 'random']),
  z.array(identifierish).min(1, 'a precedence list must name at least one database'),
  fnSchema<ConflictResolver>('a function'),
]);

export const conflictStrategySchema = z.union([
  simpleStrategySchema,
  z.strictObject({
    default: simpleStrategySchema.optional(),
    tables: z.record(z.string().min(1), simpleStrategySchema),
  }),
]);

export const roleSchema = z.enum(['source', 'target', 'fullcopy']);

export const syncConfigSchema = z.strictObject({
  /** Tables and sequences, as SQL names: `orders`, `sales.orders`, `"Odd"."Name"`. */
  tables: z.array(z.string().min(1, 'a table name must not be empty')).min(1, 'list at least one table'),
  /** Database name → role. */
  databases: z.record(identifierish, roleSchema).refine((d) => Object.keys(d).length >= 2, {
    message: 'a sync needs at least two databases',
  }).refine((d) => Object.values(d).includes('source'), { message: "a sync needs at least one 'source' database" }),
  conflictStrategy: conflictStrategySchema.default('latest'),
  onetimecopy: z.enum(['never', 'always', 'ifEmpty']).default('never'),
  autokick: z.boolean().default(true),
  cascade: z.boolean().default(false),
  onException: fnSchema<ExceptionHandler>('an async function (ctx) => "retry" | "fail"').optional(),
  /** Most changed keys applied per table in one transaction; larger backlogs go in several chunks. */
  chunkSize: z.number().int().positive().default(100_000),
});
export type SyncConfig = z.input<typeof syncConfigSchema>;
export type ResolvedSyncConfig = z.output<typeof syncConfigSchema>;

function issuesOf(error: z.ZodError, prefix: string): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const base = [prefix, ...issue.path.map(String)].filter(Boolean);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...base, key].join('.'), message: 'unknown option' });
    } else if (issue.code === 'invalid_union' && 'errors' in issue && Array.isArray(issue.errors)) {
      // Report the most specific branch: skip branches of the wrong kind altogether (a string
      // where an object was given), then take the one with the fewest issues.
      const wrongKind = (errs: z.core.$ZodIssue[]) => errs.length === 1 && errs[0]!.code === 'invalid_type' && errs[0]!.path.length === 0;
      const candidates = issue.errors.filter((errs) => !wrongKind(errs));
      const best = [...(candidates.length ? candidates : issue.errors)].sort((a, b) => a.length - b.length)[0] ?? [];
      if (best.length === 0) out.push({ path: base.join('.') || prefix, message: issue.message });
      for (const sub of best) {
        out.push(...issuesOf(new z.ZodError([{ ...sub, path: [...issue.path, ...sub.path] }]), prefix));
      }
    } else {
      out.push({ path: base.join('.') || '(root)', message: issue.message });
    }
  }
  return out;
}

/** Parses with `schema`, or throws CONFIG_INVALID listing every bad field by path. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, what: string, prefix = ''): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = issuesOf(r.error, prefix);
  const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new PgferryError('CONFIG_INVALID', `Invalid ${what}: ${list}`, { issues });
}

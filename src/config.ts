/**
 * Configuration schemas. The public option types are `z.input` of these schemas; the
 * replicator works with the parsed `z.output`. Every object is strict, so a misspelled
 * option is an error that names it.
 */
import type pg from 'pg';
import { z } from 'zod';
import { PgferryError, type ConfigIssue } from './errors.js';
import { displayName, type QualifiedName } from './sql/ident.js';
import type { ControlStore } from './store/control-store.js';
import type { MeterLike } from './telemetry.js';
import { checkPartials, type TablePartial } from './partial.js';
import type { ConflictResolver, ExceptionHandler, Role, SimpleStrategy, TableTransform } from './types.js';

const identifierish = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'must be at most 63 bytes')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte');

export const replicatorOptionsSchema = z.strictObject({
  /**
   * This instance's name, shown as a sync's `owner` in status() and kept with its runs by
   * the Postgres control store. Default `hostname:pid`.
   */
  name: z.string().min(1, 'must not be empty').max(50, 'must be at most 50 characters').optional(),
  /** Where configuration and run history live. Default: a new MemoryControlStore. */
  store: z.custom<ControlStore>((v) => typeof v === 'object' && v !== null && typeof (v as ControlStore).recordRun === 'function', {
    message: 'must be a ControlStore (e.g. new MemoryControlStore())',
  }).optional(),
  /** An OpenTelemetry Meter to report runs, rows, conflicts, backlog and lag through. */
  meter: z.custom<MeterLike>((v) => typeof v === 'object' && v !== null && typeof (v as MeterLike).createCounter === 'function', {
    message: 'must be an OpenTelemetry Meter (metrics.getMeter(...))',
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
  /** Longest wait for a free connection of a database's pool, in ms (then CONNECTION_FAILED). */
  connectionTimeoutMs: z.number().int().positive().default(30_000),
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

/** A receiving database that is not PostgreSQL (only a `target` or `fullcopy`). */
export const foreignDatabaseSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('sqlite'),
    /** The SQLite file (created by SQLite when missing; its tables must exist). */
    filename: z.string().min(1, 'must not be empty'),
  }),
  z.strictObject({
    type: z.literal('mysql'),
    /** `mysql://user:password@host:port/database` (MySQL or MariaDB). */
    uri: z.string().min(1, 'must not be empty').refine((s) => /^mysql:\/\//i.test(s), 'must be a mysql:// URI'),
  }),
  z.strictObject({
    type: z.literal('redis'),
    /** `redis://[user:password@]host:port[/db]`. */
    url: z.string().min(1, 'must not be empty').refine((s) => /^rediss?:\/\//i.test(s), 'must be a redis:// or rediss:// URL'),
  }),
]);
export type ForeignDatabaseConfig = z.input<typeof foreignDatabaseSchema>;
export type ResolvedForeignDatabaseConfig = z.output<typeof foreignDatabaseSchema>;

/** What addDatabase() takes: a PostgreSQL connection, or `{ type, ... }` for another kind. */
export type AnyDatabaseConfig = DatabaseConfig | ForeignDatabaseConfig;

/**
 * Either kind of database config, checked by the schema its `type` (or its lack) chooses, so a
 * bad field is reported for that kind only.
 */
export const anyDatabaseConfigSchema = z.unknown().transform((v, ctx) => {
  const r = (isForeignConfig(v) ? foreignDatabaseSchema : databaseConfigSchema).safeParse(v);
  if (r.success) return r.data as z.output<typeof databaseConfigSchema> | ResolvedForeignDatabaseConfig;
  // The issues as they are (issuesOf reads unions and unknown keys from them).
  for (const issue of r.error.issues) ctx.addIssue(issue as Parameters<typeof ctx.addIssue>[0]);
  return z.NEVER;
});

/** Whether `config` names another kind of database (`{ type }`). */
export function isForeignConfig(config: unknown): config is ForeignDatabaseConfig {
  return typeof config === 'object' && config !== null && 'type' in config;
}


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

const tableNameSchema = z.string().min(1, 'a table name must not be empty');

/** A table with options: which columns and rows travel, and how they change on the way. */
const tableOptionsSchema = z.strictObject({
  table: tableNameSchema,
  /** Columns that travel (the key columns always do); receivers may lack the others. */
  columns: z.array(z.string().min(1, 'a column name must not be empty')).min(1, 'list at least one column').optional(),
  /** An SQL condition on the source row; rows that do not match are not sent (or are deleted). */
  where: z.string().trim().min(1, 'must not be empty').refine((s) => !s.includes('\0'), 'must not contain a NUL byte').optional(),
  /** Called with each row on its way to a receiver: the row to write, or null to leave the key out. */
  transform: fnSchema<TableTransform>('a function (row, ctx) => row | null').optional(),
  /** Receivers the transform applies to (default: every receiver). */
  targets: z.array(identifierish).min(1, 'list at least one database').optional(),
});

export const syncConfigSchema = z.strictObject({
  /**
   * Tables and sequences, as SQL names: `orders`, `sales.orders`, `"Odd"."Name"`; or a table
   * with options: `{ table, columns?, where?, transform?, targets? }`.
   */
  tables: z.array(z.union([tableNameSchema, tableOptionsSchema])).min(1, 'list at least one table'),
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
  chunkSize: z.number().int().positive().default(1_000_000),
  /**
   * How the sources capture changes: 'row' (row-level triggers, cheapest for single-row
   * statements) or 'statement' (statement-level triggers with transition tables, cheapest for
   * statements that change many rows). Applied by install().
   */
  capture: z.enum(['row', 'statement']).default('statement'),
});
export type SyncConfig = z.input<typeof syncConfigSchema>;
export type ResolvedSyncConfig = z.output<typeof syncConfigSchema>;

export const kickOptionsSchema = z.strictObject({
  timeoutMs: z.number().int().positive().optional(),
  onetimecopy: z.enum(['always', 'ifEmpty']).optional(),
});

export const waitOptionsSchema = z.strictObject({
  timeoutMs: z.number().int().positive().optional(),
});

export const conflictsOptionsSchema = z.strictObject({
  limit: z.number().int().positive().optional(),
});

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

/** Checks a database or sync name (1 to 63 characters), else CONFIG_INVALID. */
export function checkName(kind: 'database' | 'sync', name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 63) {
    throw new PgferryError('CONFIG_INVALID', `Invalid ${kind} name: must be 1 to 63 characters.`, { issues: [{ path: 'name', message: 'must be 1 to 63 characters' }] });
  }
}

/** A sync's configuration after every check: parsed names, roles in configured order. */
export interface CheckedSync {
  config: ResolvedSyncConfig;
  relations: QualifiedName[];
  databases: { name: string; role: Role }[];
  partial: Map<string, TablePartial>;
}

/**
 * Parses a sync's configuration and checks it against the databases added so far: every
 * database known (else UNKNOWN_DATABASE), no table listed twice (nor two of one name in
 * different schemas with a SQLite or MySQL receiver), precedence lists naming
 * sources only (else CONFIG_INVALID naming the field).
 */
export function checkSync(name: string, input: unknown, knownDatabases: ReadonlySet<string>, foreign: ReadonlyMap<string, string> = new Map()): CheckedSync {
  checkName('sync', name);
  const config = parseConfig(syncConfigSchema, input, `sync "${name}"`);
  const unknown = Object.keys(config.databases).filter((d) => !knownDatabases.has(d));
  if (unknown.length > 0) {
    throw new PgferryError(
      'UNKNOWN_DATABASE',
      `Sync "${name}" names database${unknown.length > 1 ? 's' : ''} ${unknown.map((d) => `"${d}"`).join(', ')} that ${unknown.length > 1 ? 'were' : 'was'} never added. Call addDatabase() first.`,
      { sync: name, database: unknown[0] },
    );
  }
  const wrongRole = Object.entries(config.databases).filter(([db, role]) => foreign.has(db) && role === 'source');
  if (wrongRole.length > 0) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `Invalid sync "${name}": ${wrongRole.map(([db]) => `databases.${db}: database "${db}" is ${foreign.get(db)}, which can only be a 'target' or 'fullcopy'`).join('; ')}.`,
      { sync: name, issues: wrongRole.map(([db]) => ({ path: `databases.${db}`, message: `a ${foreign.get(db)} database can only be a 'target' or 'fullcopy'` })) },
    );
  }
  const relations = config.tables.map((t) => parseQualifiedName(typeof t === 'string' ? t : t.table));
  const seen = new Set<string>();
  for (const r of relations) {
    const d = displayName(r);
    if (seen.has(d)) {
      throw new PgferryError('CONFIG_INVALID', `Invalid sync "${name}": table ${d} is listed twice.`, { sync: name, issues: [{ path: 'tables', message: `${d} is listed twice` }] });
    }
    seen.add(d);
  }
  // SQLite and MySQL receivers keep table `schema.table` as `table`: two schemas' tables of one name would be one table there.
  const flat = Object.keys(config.databases).filter((db) => foreign.get(db) === 'sqlite' || foreign.get(db) === 'mysql');
  if (flat.length > 0) {
    const byName = new Map<string, string>();
    for (const r of relations) {
      const other = byName.get(r.name.toLowerCase());
      if (other !== undefined) {
        const d = displayName(r);
        throw new PgferryError(
          'CONFIG_INVALID',
          `Invalid sync "${name}": tables: ${other} and ${d} would both be table "${r.name}" on ${foreign.get(flat[0]!)} database "${flat[0]}" (SQLite and MySQL receivers drop the schema). Replicate them to different databases, in syncs of their own.`,
          { sync: name, issues: [{ path: 'tables', message: `${other} and ${d} would be one table "${r.name}" on database "${flat[0]}"` }] },
        );
      }
      byName.set(r.name.toLowerCase(), displayName(r));
    }
  }
  const cs = config.conflictStrategy;
  const strategies = [cs, ...(typeof cs === 'object' && !Array.isArray(cs) ? [cs.default, ...Object.values(cs.tables)] : [])];
  for (const p of strategies) {
    if (!Array.isArray(p)) continue;
    const bad = p.filter((d) => config.databases[d] !== 'source');
    if (bad.length) {
      throw new PgferryError('CONFIG_INVALID', `Invalid sync "${name}": conflictStrategy names ${bad.map((b) => `"${b}"`).join(', ')}, which ${bad.length > 1 ? 'are not sources' : 'is not a source'} of the sync.`, {
        sync: name,
        issues: [{ path: 'conflictStrategy', message: `${bad.join(', ')} not a source of the sync` }],
      });
    }
  }
  const partial = checkPartials(name, config.tables, relations.map(displayName), config.databases);
  return { config, relations, databases: Object.entries(config.databases).map(([db, role]) => ({ name: db, role })), partial };
}

/**
 * Parses a table name written like SQL: `orders` (schema public), `sales.orders`,
 * `"Odd Schema"."Tbl ""Q"""`. Unquoted parts fold to lower case; quoted parts are kept.
 */
export function parseQualifiedName(text: string, defaultSchema = 'public'): QualifiedName {
  const parts: string[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new PgferryError('CONFIG_INVALID', `Invalid table name ${JSON.stringify(text)}: ${why}`, {
      issues: [{ path: 'tables', message: `${JSON.stringify(text)}: ${why}` }],
    });
  };
  if (text.includes('\0')) fail('contains a NUL byte');
  while (i < text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) fail('unterminated double quote');
        if (text[i] === '"') {
          if (text[i + 1] === '"') { part += '"'; i += 2; continue; }
          i++;
          break;
        }
        part += text[i++];
      }
      if (part === '') fail('empty quoted name');
    } else {
      const start = i;
      while (i < text.length && text[i] !== '.' && text[i] !== '"') i++;
      part = text.slice(start, i).trim().toLowerCase();
      if (part === '') fail('empty name part');
      if (/\s/.test(part)) fail('unquoted names cannot contain spaces (use double quotes)');
    }
    parts.push(part);
    if (i < text.length) {
      if (text[i] !== '.') fail(`unexpected ${JSON.stringify(text[i])}`);
      i++;
      if (i >= text.length) fail('trailing dot');
    }
  }
  if (parts.length === 1) return { schema: defaultSchema, name: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, name: parts[1]! };
  return fail('expected "table" or "schema.table"');
}

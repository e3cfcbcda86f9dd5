import createDebug from 'debug';
import { EventEmitter } from 'eventemitter3';
import { requireTable, type TableInfo } from './catalog/tables.js';
import { captureSql, installCapture, uninstallCapture } from './capture/install.js';
import {
  databaseConfigSchema,
  parseConfig,
  replicatorOptionsSchema,
  syncConfigSchema,
  type DatabaseConfig,
  type ReplicatorOptions,
  type ResolvedReplicatorOptions,
  type SyncConfig,
} from './config.js';
import { Database } from './db/database.js';
import { PgferryError } from './errors.js';
import type { Emit, ReplicatorEvents } from './events.js';
import { NotificationListener } from './scheduler/listener.js';
import { SyncRunner } from './scheduler/sync-runner.js';
import { displayName, parseQualifiedName } from './sql/ident.js';
import { MemoryControlStore, type ControlStore } from './store/control-store.js';
import type { SyncPlan } from './sync/plan.js';
import { runSync } from './sync/run.js';
import { validateSync, type ValidationResult } from './sync/validate.js';
import type { Role, RunReason, RunResult } from './types.js';

const debug = createDebug('pgferry:replicator');

interface SyncEntry {
  plan: SyncPlan;
  runner: SyncRunner;
}

export interface KickOptions {
  /** Reject with KICK_TIMEOUT after this many ms (the run goes on). */
  timeoutMs?: number;
}

export interface StopOptions {
  /** How long to let runs in flight finish before giving up on them (default 30 s). */
  timeoutMs?: number;
}

export interface SyncStatus {
  name: string;
  running: boolean;
  autokick: boolean;
  databases: Record<string, Role>;
  lastResult: RunResult | null;
  lastError: PgferryError | null;
}

export interface ReplicatorStatus {
  started: boolean;
  databases: string[];
  syncs: SyncStatus[];
}

/**
 * The replicator: databases, syncs, and the runs that move changes between them.
 *
 * @example
 * const rep = new Replicator();
 * await rep.addDatabase('a', 'postgres://app@127.0.0.1:5432/shop');
 * await rep.addDatabase('b', 'postgres://app@127.0.0.1:5433/shop');
 * await rep.addSync('shop', { tables: ['orders'], databases: { a: 'source', b: 'target' } });
 * await rep.install();
 * const result = await rep.kick('shop');
 * await rep.stop();
 */
export class Replicator extends EventEmitter<ReplicatorEvents> implements AsyncDisposable {
  readonly options: Readonly<Omit<ResolvedReplicatorOptions, 'store'>>;
  readonly store: ControlStore;
  readonly #dbs = new Map<string, Database>();
  readonly #syncs = new Map<string, SyncEntry>();
  /** One LISTEN connection per source database of an autokick sync. */
  readonly #listeners = new Map<string, NotificationListener>();
  #checkTimer: NodeJS.Timeout | null = null;
  #started = false;
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  #debounce = new Map<string, NodeJS.Timeout>();
  /** Aborted by a stop() whose timeout passed: runs in flight roll back and reject STOPPED. */
  #abort = new AbortController();
  readonly #recording = new Set<Promise<void>>();
  readonly #emit: Emit;

  constructor(options: ReplicatorOptions = {}) {
    super();
    const parsed = parseConfig(replicatorOptionsSchema, options, 'Replicator options');
    const { store, ...rest } = parsed;
    this.store = store ?? new MemoryControlStore();
    this.options = Object.freeze(rest);
    const emit = ((name, payload) => this.#safeEmit(name, payload)) as Emit;
    emit.wants = (name) => this.listenerCount(name) > 0;
    this.#emit = emit;
  }

  /** Listener exceptions never reach the replicator; an unheard `error` becomes a process warning. */
  #safeEmit<K extends keyof ReplicatorEvents>(name: K, payload: Parameters<ReplicatorEvents[K]>[0]): void {
    const listeners = this.listeners(name) as ((p: unknown) => void)[];
    if (name === 'error' && listeners.length === 0) {
      const err = payload as PgferryError;
      process.emitWarning(`pgferry: ${err.message}`, { code: `PGFERRY_${err.code}` });
      return;
    }
    for (const l of listeners) {
      try {
        l(payload);
      } catch (err) {
        debug('a %s listener threw: %s', name, (err as Error)?.message);
      }
    }
  }

  /**
   * Adds a database: a connection string, a pg PoolConfig, or `{ pool }` with a pool you own
   * (pgferry never ends a pool it did not create).
   *
   * @example await rep.addDatabase('a', { host: '127.0.0.1', database: 'shop', user: 'app' });
   */
  async addDatabase(name: string, config: DatabaseConfig): Promise<void> {
    if (typeof name !== 'string' || name.length === 0 || name.length > 63) {
      throw new PgferryError('CONFIG_INVALID', 'Invalid database name: must be 1 to 63 characters.', { issues: [{ path: 'name', message: 'must be 1 to 63 characters' }] });
    }
    const parsed = parseConfig(databaseConfigSchema, config, `database "${name}"`, name);
    if (this.#dbs.has(name)) {
      throw new PgferryError('CONFIG_INVALID', `Database "${name}" was already added; each database name is used once.`, {
        database: name,
        issues: [{ path: name, message: 'already added' }],
      });
    }
    this.#dbs.set(name, new Database(name, parsed as ConstructorParameters<typeof Database>[1]));
  }

  /**
   * Declares a sync: tables, databases with roles, and how to settle conflicts.
   *
   * @example await rep.addSync('shop', { tables: ['orders'], databases: { a: 'source', b: 'target' } });
   */
  async addSync(name: string, config: SyncConfig): Promise<void> {
    if (typeof name !== 'string' || name.length === 0 || name.length > 63) {
      throw new PgferryError('CONFIG_INVALID', 'Invalid sync name: must be 1 to 63 characters.', { issues: [{ path: 'name', message: 'must be 1 to 63 characters' }] });
    }
    const cfg = parseConfig(syncConfigSchema, config, `sync "${name}"`);
    if (this.#syncs.has(name)) {
      throw new PgferryError('CONFIG_INVALID', `Sync "${name}" was already added.`, { sync: name, issues: [{ path: 'name', message: 'already added' }] });
    }
    const unknown = Object.keys(cfg.databases).filter((d) => !this.#dbs.has(d));
    if (unknown.length > 0) {
      throw new PgferryError(
        'UNKNOWN_DATABASE',
        `Sync "${name}" names database${unknown.length > 1 ? 's' : ''} ${unknown.map((d) => `"${d}"`).join(', ')} that ${unknown.length > 1 ? 'were' : 'was'} never added. Call addDatabase() first.`,
        { sync: name, database: unknown[0] },
      );
    }
    const relations = cfg.tables.map((t) => parseQualifiedName(t));
    const seen = new Set<string>();
    for (const r of relations) {
      const d = displayName(r);
      if (seen.has(d)) {
        throw new PgferryError('CONFIG_INVALID', `Invalid sync "${name}": table ${d} is listed twice.`, { sync: name, issues: [{ path: 'tables', message: `${d} is listed twice` }] });
      }
      seen.add(d);
    }
    const precedence = [cfg.conflictStrategy, ...(typeof cfg.conflictStrategy === 'object' && !Array.isArray(cfg.conflictStrategy) ? [cfg.conflictStrategy.default, ...Object.values(cfg.conflictStrategy.tables)] : [])];
    for (const p of precedence) {
      if (!Array.isArray(p)) continue;
      const bad = p.filter((d) => cfg.databases[d] !== 'source');
      if (bad.length) {
        throw new PgferryError('CONFIG_INVALID', `Invalid sync "${name}": conflictStrategy names ${bad.map((b) => `"${b}"`).join(', ')}, which ${bad.length > 1 ? 'are not sources' : 'is not a source'} of the sync.`, {
          sync: name,
          issues: [{ path: 'conflictStrategy', message: `${bad.join(', ')} not a source of the sync` }],
        });
      }
    }
    const plan: SyncPlan = {
      name,
      config: cfg,
      relations,
      databases: Object.entries(cfg.databases).map(([db, role]) => ({ name: db, role })),
      state: { onetimecopyDone: cfg.onetimecopy === 'never' },
    };
    let housekeeping: Promise<void> = Promise.resolve();
    const runner = new SyncRunner(
      name,
      {
        run: async (runId, reason) => {
          // The previous run's housekeeping finishes first, so runs of a sync never pile it up.
          await housekeeping;
          return runSync(
            plan,
            {
              dbs: this.#dbs,
              schema: this.options.schema,
              emit: this.#emit,
              signal: this.#abort.signal,
              background: (task) => {
                housekeeping = this.#inBackground(task);
              },
            },
            runId,
            reason,
          );
        },
        onStart: (runId, reason) => this.#emit('sync:start', { sync: name, runId, reason }),
        onComplete: (result) => {
          this.#emit('sync:complete', result);
          this.#record(result.runId, name, result.reason, result.status, result.startedAt, result.durationMs, result.totals.upserted + result.totals.deleted);
        },
        onError: (runId, error, willRetry, retryInMs) => {
          this.#emit('sync:error', { sync: name, runId, error, willRetry, ...(retryInMs !== undefined && { retryInMs }) });
          if (this.#started && !willRetry) this.#emit('error', error);
          this.#record(runId, name, 'kick', 'error', new Date(), 0, 0, error);
        },
      },
      this.options.retry,
    );
    this.#syncs.set(name, { plan, runner });
    if (this.#started) {
      runner.setBackground(true);
      await this.#listen();
    }
  }

  /** Housekeeping that follows a run (delta pruning); stop() waits for it. */
  #inBackground(task: () => Promise<void>): Promise<void> {
    const p = task().catch((err: Error) => debug('background task failed: %s', err?.message));
    this.#recording.add(p);
    void p.finally(() => this.#recording.delete(p));
    return p;
  }

  /** Records a run in the store in the background; stop() waits for these. */
  #record(runId: string, sync: string, reason: RunReason, status: 'ok' | 'empty' | 'error', startedAt: Date, durationMs: number, rows: number, error?: PgferryError): void {
    const p = (async () => {
      try {
        await this.store.recordRun({ runId, sync, reason, status, startedAt, durationMs, rows, ...(error && { error: { code: error.code, message: error.message } }) });
      } catch (err) {
        debug('control store failed to record run: %s', (err as Error).message);
      }
    })();
    this.#recording.add(p);
    void p.finally(() => this.#recording.delete(p));
  }

  #sync(name: string): SyncEntry {
    const s = this.#syncs.get(name);
    if (!s) {
      throw new PgferryError('UNKNOWN_SYNC', `There is no sync "${name}". Known syncs: ${[...this.#syncs.keys()].join(', ') || '(none)'}.`, { sync: name });
    }
    return s;
  }

  #selected(sync?: string): SyncEntry[] {
    return sync === undefined ? [...this.#syncs.values()] : [this.#sync(sync)];
  }

  /** Reads and checks every table of a sync on each source (nothing is changed). */
  async #readSources(plan: SyncPlan): Promise<Map<string, TableInfo[]>> {
    const out = new Map<string, TableInfo[]>();
    // Full copies need no key and no capture; changes sent to targets (or between sources) do.
    const incremental = plan.databases.filter((d) => d.role !== 'fullcopy').length > 1;
    for (const { name, role } of plan.databases) {
      if (role !== 'source') continue;
      const db = this.#dbs.get(name)!;
      const client = await db.connect();
      try {
        const infos: TableInfo[] = [];
        for (const rel of plan.relations) {
          const t = await requireTable(client, rel, name).catch((e) => { throw db.wrap(e); });
          if (incremental && t.kind === 'table' && t.key.length === 0) {
            throw new PgferryError(
              'NO_PRIMARY_KEY',
              `Table ${displayName(t)} on database "${name}" has no primary key and no unique index on NOT NULL columns, so sync "${plan.name}" cannot replicate it incrementally. Add a primary key, or give it its own sync with a 'fullcopy' target.`,
              { sync: plan.name, database: name, table: displayName(t) },
            );
          }
          infos.push(t);
        }
        out.set(name, incremental ? infos : []);
      } finally {
        client.release();
      }
    }
    return out;
  }

  /**
   * Creates the library schema, delta tables and capture triggers on every source of the
   * sync (or of every sync). Idempotent. Checks every table first: on a missing table or
   * key nothing is installed anywhere.
   */
  async install(sync?: string): Promise<void> {
    const entries = this.#selected(sync);
    const checked = new Map<SyncEntry, Map<string, TableInfo[]>>();
    for (const e of entries) checked.set(e, await this.#readSources(e.plan));
    await this.store.init?.();
    for (const [e, perDb] of checked) {
      for (const [dbName, tables] of perDb) {
        if (!tables.some((t) => t.kind === 'table')) continue; // full copies need no capture
        await this.#inTransaction(dbName, (c) => installCapture(c, this.options.schema, dbName, e.plan.name, tables));
      }
    }
    if (this.#started) await this.#listen();
  }

  /** The DDL `install()` would run for a sync's tables, for review. Changes nothing. */
  async installSql(sync: string): Promise<string> {
    const e = this.#sync(sync);
    const perDb = await this.#readSources(e.plan);
    const first = [...perDb.values()][0] ?? [];
    return first.flatMap((t) => (t.kind === 'table' ? captureSql(this.options.schema, t) : [])).join(';\n\n') + ';\n';
  }

  /**
   * Removes capture for a sync (tables still read by another sync keep theirs), or
   * everything pgferry installed when called without a name.
   */
  async uninstall(sync?: string): Promise<void> {
    const dbNames = new Set<string>();
    for (const e of this.#selected(sync)) for (const d of e.plan.databases) if (d.role === 'source') dbNames.add(d.name);
    if (sync === undefined) for (const name of this.#dbs.keys()) dbNames.add(name);
    for (const name of dbNames) {
      await this.#inTransaction(name, (c) => uninstallCapture(c, this.options.schema, sync));
    }
  }

  async #inTransaction(dbName: string, fn: (c: import('pg').PoolClient) => Promise<void>): Promise<void> {
    const db = this.#dbs.get(dbName)!;
    const c = await db.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      await fn(c);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw db.wrap(err);
    } finally {
      c.release(broken);
    }
  }

  /**
   * Runs a sync now and resolves when that run committed. During a run in flight it joins
   * it and then runs once more. Without a name, kicks every sync.
   *
   * @example const { status, tables } = await rep.kick('shop');
   */
  kick(sync: string, options?: KickOptions): Promise<RunResult>;
  kick(sync?: undefined, options?: KickOptions): Promise<RunResult[]>;
  async kick(sync?: string, options: KickOptions = {}): Promise<RunResult | RunResult[]> {
    if (sync === undefined) return Promise.all([...this.#syncs.keys()].map((name) => this.kick(name, options)));
    const entry = this.#sync(sync);
    const run = entry.runner.request('kick');
    if (options.timeoutMs === undefined) return run;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PgferryError('KICK_TIMEOUT', `Kick of sync "${sync}" did not finish within ${options.timeoutMs} ms; the run goes on.`, { sync })),
        options.timeoutMs,
      );
    });
    try {
      return await Promise.race([run, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts autokick listeners, periodic checks and background retries. Safe to call twice. */
  async start(): Promise<void> {
    if (this.#started) return;
    if (this.#starting) return this.#starting;
    if (this.#stopping) await this.#stopping;
    this.#starting = (async () => {
      await this.store.init?.();
      this.#started = true;
      for (const e of this.#syncs.values()) e.runner.setBackground(true);
      await this.#listen();
      if (this.options.checkIntervalMs > 0) {
        this.#checkTimer = setInterval(() => {
          for (const e of this.#syncs.values()) if (e.plan.config.autokick) e.runner.poke('check');
        }, this.options.checkIntervalMs);
        this.#checkTimer.unref();
      }
      // Catch up on whatever was written while nobody listened.
      for (const e of this.#syncs.values()) if (e.plan.config.autokick) e.runner.poke('autokick');
    })();
    try {
      await this.#starting;
    } finally {
      this.#starting = null;
    }
  }

  /** Opens a listener on every source of an autokick sync that has none yet. */
  async #listen(): Promise<void> {
    const wanted = new Set<string>();
    for (const e of this.#syncs.values()) {
      if (!e.plan.config.autokick) continue;
      for (const d of e.plan.databases) if (d.role === 'source') wanted.add(d.name);
    }
    for (const name of wanted) {
      if (this.#listeners.has(name)) continue;
      const l = new NotificationListener(this.#dbs.get(name)!, this.options.schema, (table) => this.#notified(name, table));
      this.#listeners.set(name, l);
      await l.start();
    }
  }

  #notified(db: string, table: string | null): void {
    for (const e of this.#syncs.values()) {
      const { plan } = e;
      if (!plan.config.autokick) continue;
      if (!plan.databases.some((d) => d.name === db && d.role === 'source')) continue;
      if (table !== null && !plan.relations.some((r) => displayName(r) === table)) continue;
      const delay = this.options.autokickDelayMs;
      if (delay === 0) {
        e.runner.poke('autokick');
      } else if (!this.#debounce.has(plan.name)) {
        const t = setTimeout(() => {
          this.#debounce.delete(plan.name);
          e.runner.poke('autokick');
        }, delay);
        t.unref();
        this.#debounce.set(plan.name, t);
      }
    }
  }

  /**
   * Stops listeners, timers and retries, lets runs in flight finish (up to `timeoutMs`), and
   * closes the connections pgferry opened. Pools you passed in stay open. Safe to call twice.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (this.#starting) await this.#starting.catch(() => undefined);
    this.#stopping = (async () => {
      this.#started = false;
      if (this.#checkTimer) clearInterval(this.#checkTimer);
      this.#checkTimer = null;
      for (const t of this.#debounce.values()) clearTimeout(t);
      this.#debounce.clear();
      for (const e of this.#syncs.values()) e.runner.setBackground(false);
      const listeners = [...this.#listeners.values()];
      this.#listeners.clear();
      await Promise.all(listeners.map((l) => l.stop()));
      const inFlight = [...this.#syncs.values()].map((e) => e.runner.inFlight).filter((p): p is Promise<unknown> => p !== null);
      if (inFlight.length > 0) {
        let timer: NodeJS.Timeout | undefined;
        const gaveUp = await Promise.race([
          Promise.allSettled(inFlight).then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), options.timeoutMs ?? 30_000);
          }),
        ]);
        clearTimeout(timer);
        if (gaveUp) {
          debug('stop: runs still in flight after %dms; aborting them', options.timeoutMs ?? 30_000);
          this.#abort.abort();
          // Aborted runs end as soon as their connections are cut; one still waiting for a
          // connection ends when it gets one. Do not wait for that forever.
          let t2: NodeJS.Timeout | undefined;
          await Promise.race([Promise.allSettled(inFlight), new Promise((r) => (t2 = setTimeout(r, 5_000)))]);
          clearTimeout(t2);
        }
      }
      this.#abort = new AbortController();
      await Promise.all(this.#recording);
      await Promise.all([...this.#dbs.values()].map((d) => d.close().catch(() => undefined)));
      await this.store.close?.();
    })();
    try {
      await this.#stopping;
    } finally {
      this.#stopping = null;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Compares every table of a sync across its databases and reports the keys whose rows
   * differ or are missing. Reads only.
   *
   * @example const v = await rep.validate('shop'); if (!v.equal) console.log(v.tables);
   */
  async validate(sync: string): Promise<ValidationResult> {
    return validateSync(this.#sync(sync).plan, this.#dbs);
  }

  /** What runs and what happened last, per sync. */
  status(): ReplicatorStatus {
    return {
      started: this.#started,
      databases: [...this.#dbs.keys()],
      syncs: [...this.#syncs.values()].map(({ plan, runner }) => ({
        name: plan.name,
        running: runner.running,
        autokick: plan.config.autokick,
        databases: Object.fromEntries(plan.databases.map((d) => [d.name, d.role])),
        lastResult: runner.lastResult,
        lastError: runner.lastError,
      })),
    };
  }
}

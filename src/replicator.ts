/**
 * The public face: it holds the databases and syncs, and delegates. Capture is installed by
 * capture/installer, runs go through one SyncRunner per sync (sync/run), background runs are
 * driven by scheduler/autokick, and results are recorded in the control store.
 */
import createDebug from 'debug';
import { EventEmitter } from 'eventemitter3';
import os from 'node:os';
import { Installer } from './capture/installer.js';
import {
  checkSync,
  conflictsOptionsSchema,
  kickOptionsSchema,
  parseConfig,
  replicatorOptionsSchema,
  type AnyDatabaseConfig,
  type ReplicatorOptions,
  type ResolvedReplicatorOptions,
  type SyncConfig,
  waitOptionsSchema,
} from './config.js';
import type { Database } from './db/database.js';
import { Databases } from './databases.js';
import { PgferryError } from './errors.js';
import type { Emit, ReplicatorEvents } from './events.js';
import { RunCounters, metricsOf, waitForApplied, type Metrics, type WaitForAppliedOptions } from './operate.js';
import type { SyncPlan } from './plan.js';
import type { KickOptions, ReplicatorStatus, StopOptions } from './status.js';
import { Telemetry } from './telemetry.js';
export type { KickOptions, StopOptions, SyncStatus, ReplicatorStatus } from './status.js';
import { Autokick, type ScheduledSync } from './scheduler/autokick.js';
import { Holder } from './scheduler/holder.js';
import { SyncRunner } from './scheduler/sync-runner.js';
import { BackgroundTasks, settlesWithin } from './scheduler/tasks.js';
import { MemoryControlStore, type ControlStore, type RunRecord } from './store/control-store.js';
import { runSync } from './sync/run.js';
import { validateSync, type ValidateOptions, type ValidationResult } from './sync/validate.js';
import type { ConflictRecord, RunResult } from './types.js';

const debug = createDebug('pgferry:replicator');

/** How long stop() lets runs in flight finish by default. */
const DEFAULT_STOP_TIMEOUT_MS = 30_000;
/** After aborting runs, how long stop() waits for them to end (one may wait for a connection). */
const ABORT_GRACE_MS = 5_000;

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
  readonly options: Readonly<Omit<ResolvedReplicatorOptions, 'store' | 'name' | 'meter'>>;
  readonly store: ControlStore;
  /** This instance's name (`options.name`, default `hostname:pid`). */
  readonly name: string;
  readonly #databases: Databases;
  readonly #dbs: ReadonlyMap<string, Database>;
  readonly #syncs = new Map<string, ScheduledSync>();
  readonly #counters = new Map<string, RunCounters>();
  readonly #telemetry: Telemetry | null;
  readonly #installer: Installer;
  readonly #holder: Holder;
  readonly #autokick: Autokick;
  /** Delta pruning after runs and run records: stop() waits for them. */
  readonly #tasks = new BackgroundTasks();
  #started = false;
  #starting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  /** Aborted by a stop() whose timeout passed: runs in flight roll back and reject STOPPED. */
  #abort = new AbortController();
  readonly #emit: Emit;

  constructor(options: ReplicatorOptions = {}) {
    super();
    const { store, name, meter, ...rest } = parseConfig(replicatorOptionsSchema, options, 'Replicator options');
    this.store = store ?? new MemoryControlStore();
    this.name = name ?? `${os.hostname().slice(0, 38)}:${process.pid}`;
    this.options = Object.freeze(rest);
    this.#databases = new Databases(rest.schema, rest.connectionTimeoutMs);
    this.#dbs = this.#databases.postgres;
    this.#telemetry = meter ? new Telemetry(meter, () => this.metrics()) : null;
    const emit = ((name, payload) => this.#safeEmit(name, payload)) as Emit;
    emit.wants = (name) => this.listenerCount(name) > 0;
    this.#emit = emit;
    this.#installer = new Installer(this.#dbs, rest.schema);
    const plans = () => [...this.#syncs.values()].map((s) => s.plan);
    this.#holder = new Holder(this.#dbs, rest.schema, this.name, plans, { changed: (sync, held) => this.#holdChanged(sync, held) });
    this.#autokick = new Autokick(this.#dbs, rest.schema, rest, () => this.#syncs.values(), (sync) => this.#holder.holds(sync));
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
   * (pgferry never ends a pool it did not create); or, as a target or fullcopy receiver only,
   * `{ type: 'sqlite', filename }`, `{ type: 'mysql', uri }` or `{ type: 'redis', url }` (the
   * driver, an optional peer dependency, is loaded now).
   *
   * @example await rep.addDatabase('a', { host: '127.0.0.1', database: 'shop', user: 'app' });
   * @example await rep.addDatabase('cache', { type: 'redis', url: 'redis://127.0.0.1:6379' });
   */
  async addDatabase(name: string, config: AnyDatabaseConfig): Promise<void> {
    await this.#databases.add(name, config);
  }

  /**
   * Declares a sync: tables, databases with roles, and how to settle conflicts.
   *
   * @example await rep.addSync('shop', { tables: ['orders'], databases: { a: 'source', b: 'target' } });
   */
  async addSync(name: string, config: SyncConfig): Promise<void> {
    const checked = checkSync(name, config, new Set(this.#databases.names()), this.#databases.otherKinds());
    if (this.#syncs.has(name)) {
      throw new PgferryError('CONFIG_INVALID', `Sync "${name}" was already added.`, { sync: name, issues: [{ path: 'name', message: 'already added' }] });
    }
    const plan: SyncPlan = { name, ...checked };
    const runner = this.#runnerFor(plan);
    this.#syncs.set(name, { plan, runner });
    this.#counters.set(name, new RunCounters(name, this.#telemetry));
    if (this.#started) {
      // Listening first: the run the hold starts takes its snapshot after LISTEN is in effect.
      await this.#autokick.listen();
      await this.#holder.poll();
    }
  }

  /**
   * The background work of a sync (notifications, checks, retries) is done here while this
   * instance holds it; a takeover catches up on what was written meanwhile.
   */
  #holdChanged(sync: string, held: boolean): void {
    const s = this.#syncs.get(sync);
    if (!s) return;
    s.runner.setBackground(held && (this.#started || this.#starting !== null));
    if (held && this.#started && s.plan.config.autokick) s.runner.poke('autokick');
  }

  /** The runner of one sync: its runs, their events, and their records. */
  #runnerFor(plan: SyncPlan): SyncRunner {
    const sync = plan.name;
    const counters = () => this.#counters.get(sync)!;
    let housekeeping: Promise<void> = Promise.resolve();
    return new SyncRunner(
      sync,
      {
        run: async (ctx) => {
          // The previous run's housekeeping finishes first, so runs of a sync never pile it up;
          // and quiet listeners listen again before the run's snapshots.
          await Promise.all([housekeeping, this.#autokick.ready(plan)]);
          const deps = {
            dbs: this.#dbs,
            foreign: this.#databases.others,
            schema: this.options.schema,
            emit: this.#emit,
            signal: this.#abort.signal,
            background: (task: () => Promise<void>) => {
              housekeeping = this.#tasks.run(task, (err) => debug('background task failed: %s', err?.message));
            },
            ...(this.store.recordConflicts && { recordConflicts: (records: ConflictRecord[]) => this.#recordConflicts(records) }),
          };
          return runSync(plan, deps, ctx);
        },
        onStart: (ctx) => this.#emit('sync:start', { sync, runId: ctx.runId, reason: ctx.reason }),
        onComplete: (result) => {
          counters().completed(result);
          this.#emit('sync:complete', result);
          const { runId, reason, status, startedAt, durationMs, totals } = result;
          this.#record({ runId, sync, reason, status, startedAt, durationMs, rows: totals.upserted + totals.deleted, instance: this.name });
        },
        onError: (ctx, error, willRetry, retryInMs) => {
          this.#emit('sync:error', { sync, runId: ctx.runId, error, willRetry, ...(retryInMs !== undefined && { retryInMs }) });
          if (this.#started && !willRetry) this.#emit('error', error);
          const durationMs = Date.now() - ctx.startedAt.getTime();
          counters().failed(durationMs);
          const { runId, reason, startedAt } = ctx;
          this.#record({ runId, sync, reason, startedAt, status: 'error', durationMs, rows: 0, instance: this.name, error: { code: error.code, message: error.message } });
        },
      },
      this.options.retry,
    );
  }

  /** Records a run in the store in the background; stop() waits for these. */
  #record(run: RunRecord): void {
    void this.#tasks.run(() => this.store.recordRun(run), (err) => debug('control store failed to record run: %s', err.message));
  }

  /** Keeps settled conflicts in the store in the background; stop() waits for these. */
  #recordConflicts(records: ConflictRecord[]): void {
    void this.#tasks.run(() => this.store.recordConflicts!(records), (err) => debug('control store failed to record conflicts: %s', err.message));
  }

  #sync(name: string): ScheduledSync {
    const s = this.#syncs.get(name);
    if (!s) {
      throw new PgferryError('UNKNOWN_SYNC', `There is no sync "${name}". Known syncs: ${[...this.#syncs.keys()].join(', ') || '(none)'}.`, { sync: name });
    }
    return s;
  }

  #plans(sync?: string): SyncPlan[] {
    return sync === undefined ? [...this.#syncs.values()].map((s) => s.plan) : [this.#sync(sync).plan];
  }

  /**
   * Creates the library schema, delta tables and capture triggers on every source of the
   * sync (or of every sync). Idempotent. Checks every table first: on a missing table or
   * key nothing is installed anywhere.
   */
  async install(sync?: string): Promise<void> {
    const plans = this.#plans(sync);
    await this.store.init?.();
    await this.#databases.pingOthers(plans.flatMap((p) => p.databases.map((d) => d.name)));
    await this.#installer.install(plans);
    if (this.#started) await this.#autokick.listen();
  }

  /** The DDL `install()` would run for a sync's tables, for review. Changes nothing. */
  async installSql(sync: string): Promise<string> {
    return this.#installer.sql(this.#sync(sync).plan);
  }

  /**
   * Removes capture for a sync (tables still read by another sync keep theirs), or
   * everything pgferry installed when called without a name.
   */
  async uninstall(sync?: string): Promise<void> {
    await this.#installer.uninstall(this.#plans(sync), sync === undefined);
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
    parseConfig(kickOptionsSchema, options, 'kick options');
    if (sync === undefined) return Promise.all([...this.#syncs.keys()].map((name) => this.kick(name, options)));
    const run = this.#sync(sync).runner.request('kick', options.onetimecopy ? { onetimecopy: options.onetimecopy } : {});
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
      // Background work of each sync in one instance at a time: the one that holds it.
      await this.#holder.start();
      this.#started = true;
      await this.#autokick.start();
    })();
    try {
      await this.#starting;
    } finally {
      this.#starting = null;
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
      await this.#drain();
      const inFlight = [...this.#syncs.values()].map((s) => s.runner.inFlight).filter((p): p is Promise<unknown> => p !== null);
      const timeoutMs = options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
      if (!(await settlesWithin(inFlight, timeoutMs))) {
        debug('stop: runs still in flight after %dms; aborting them', timeoutMs);
        await this.#abortRuns(inFlight);
      }
      await this.#close();
    })();
    try {
      await this.#stopping;
    } finally {
      this.#stopping = null;
    }
  }

  /** stop(), first phase: no new background work (listeners, timers, retries); another instance may take the syncs over. */
  async #drain(): Promise<void> {
    this.#started = false;
    for (const s of this.#syncs.values()) s.runner.setBackground(false);
    await this.#autokick.stop();
    await this.#holder.stop();
  }

  /** stop(), when runs outlive the timeout: cut their connections; they roll back and reject STOPPED. */
  async #abortRuns(inFlight: Promise<unknown>[]): Promise<void> {
    this.#abort.abort();
    // Aborted runs end as soon as their connections are cut; one still waiting for a
    // connection ends when it gets one. Do not wait for that forever.
    await settlesWithin(inFlight, ABORT_GRACE_MS);
  }

  /** stop(), last phase: records and housekeeping written, then every connection we opened closed. */
  async #close(): Promise<void> {
    this.#abort = new AbortController();
    await this.#tasks.drain();
    await this.#databases.close();
    await this.store.close?.();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Compares every table of a sync across its databases (hashing key ranges on the servers) and
   * reports the keys whose rows differ or are missing; `repair: true` makes every database equal to the sources.
   *
   * @example const v = await rep.validate('shop', { repair: true }); if (!v.equal) console.log(v.tables);
   */
  async validate(sync: string, options?: ValidateOptions): Promise<ValidationResult> {
    return validateSync(this.#sync(sync).plan, { dbs: this.#dbs, schema: this.options.schema, emit: this.#emit, otherKinds: this.#databases.otherKinds() }, options);
  }

  /** Per sync: this instance's run counters, and the backlog and lag on each source (whoever runs the sync). */
  async metrics(): Promise<Metrics> {
    return metricsOf(this.#plans(), this.#counters, this.#dbs, this.options.schema, this.options.connectionTimeoutMs);
  }

  /**
   * Resolves once every change committed on `database` before the call has been applied by the
   * syncs where it is a source (read-your-writes); WAIT_TIMEOUT after `timeoutMs` (default 30 s).
   */
  async waitForApplied(database: string, options: WaitForAppliedOptions = {}): Promise<void> {
    parseConfig(waitOptionsSchema, options, 'waitForApplied options');
    await waitForApplied(this.#dbs, database, this.#plans(), this.options.schema, options);
  }

  /** The latest settled conflicts of a sync (default 100), as the control store keeps them; none if it keeps none. */
  async conflicts(sync: string, options: { limit?: number } = {}): Promise<ConflictRecord[]> {
    const { limit = 100 } = parseConfig(conflictsOptionsSchema, options, 'conflicts options');
    this.#sync(sync);
    return (await this.store.conflicts?.(sync, limit)) ?? [];
  }

  /** What runs and what happened last, per sync. */
  status(): ReplicatorStatus {
    return {
      name: this.name,
      started: this.#started,
      databases: this.#databases.names(),
      syncs: [...this.#syncs.values()].map(({ plan, runner }) => ({
        name: plan.name,
        running: runner.running,
        owner: runner.running ? this.name : this.#holder.owner(plan.name),
        autokick: plan.config.autokick,
        databases: Object.fromEntries(plan.databases.map((d) => [d.name, d.role])),
        lastResult: runner.lastResult,
        lastError: runner.lastError,
      })),
    };
  }
}

/**
 * Background runs after start(): a LISTEN connection per source database of an autokick sync
 * (commits there poke the syncs that read the changed table, optionally debounced), a periodic
 * check that pokes every autokick sync, and a catch-up poke at start.
 */
import type { Database } from '../db/database.js';
import type { SyncPlan } from '../plan.js';
import { displayName } from '../sql/ident.js';
import { NotificationListener } from './listener.js';
import type { SyncRunner } from './sync-runner.js';

export interface ScheduledSync {
  plan: SyncPlan;
  runner: SyncRunner;
}

export interface AutokickOptions {
  checkIntervalMs: number;
  autokickDelayMs: number;
}

export class Autokick {
  readonly #dbs: ReadonlyMap<string, Database>;
  readonly #schema: string;
  readonly #options: AutokickOptions;
  readonly #syncs: () => Iterable<ScheduledSync>;
  readonly #held: (sync: string) => boolean;
  /** One LISTEN connection per source database of an autokick sync. */
  readonly #listeners = new Map<string, NotificationListener>();
  readonly #debounce = new Map<string, NodeJS.Timeout>();
  #checkTimer: NodeJS.Timeout | null = null;

  /** `held`: whether this instance does the sync's background work (see holder.ts). */
  constructor(dbs: ReadonlyMap<string, Database>, schema: string, options: AutokickOptions, syncs: () => Iterable<ScheduledSync>, held: (sync: string) => boolean) {
    this.#dbs = dbs;
    this.#schema = schema;
    this.#options = options;
    this.#syncs = syncs;
    this.#held = held;
  }

  /** Autokick syncs; with `heldOnly`, only those this instance does the background work of. */
  #autokicked(heldOnly = true): ScheduledSync[] {
    return [...this.#syncs()].filter((s) => s.plan.config.autokick && (!heldOnly || this.#held(s.plan.name)));
  }

  /** Listens, starts the periodic check, and pokes every autokick sync to catch up. */
  async start(): Promise<void> {
    await this.listen();
    if (this.#options.checkIntervalMs > 0) {
      this.#checkTimer = setInterval(() => {
        for (const s of this.#autokicked()) s.runner.poke('check');
      }, this.#options.checkIntervalMs);
      this.#checkTimer.unref();
    }
    // Catch up on whatever was written while nobody listened.
    for (const s of this.#autokicked()) s.runner.poke('autokick');
  }

  /** Opens a listener on every source of an autokick sync that has none yet. */
  async listen(): Promise<void> {
    const wanted = new Set<string>();
    // Standbys listen too, so a takeover needs no new connection.
    for (const { plan } of this.#autokicked(false)) {
      for (const d of plan.databases) if (d.role === 'source') wanted.add(d.name);
    }
    for (const name of wanted) {
      if (this.#listeners.has(name)) continue;
      const l = new NotificationListener(this.#dbs.get(name)!, this.#schema, (table) => this.#notified(name, table));
      this.#listeners.set(name, l);
      await l.start();
    }
  }

  #notified(db: string, table: string | null): void {
    const syncs = this.#autokicked();
    for (const { plan, runner } of syncs) {
      if (!plan.databases.some((d) => d.name === db && d.role === 'source')) continue;
      if (table !== null && !plan.relations.some((r) => displayName(r) === table)) continue;
      const delay = this.#options.autokickDelayMs;
      if (delay === 0) {
        runner.poke('autokick');
      } else if (!this.#debounce.has(plan.name)) {
        const t = setTimeout(() => {
          this.#debounce.delete(plan.name);
          runner.poke('autokick');
        }, delay);
        t.unref();
        this.#debounce.set(plan.name, t);
      }
    }
    // Every sync served here has a run booked, which will listen again before its snapshot.
    if (syncs.every((s) => s.runner.booked || !s.plan.databases.some((d) => d.name === db && d.role === 'source'))) {
      this.#listeners.get(db)?.quiet();
    }
  }

  /** Before a run of `plan` takes its snapshots: its sources' listeners listen (see listener.ts). */
  async ready(plan: SyncPlan): Promise<void> {
    if (!plan.config.autokick) return;
    await Promise.all(plan.databases.map((d) => (d.role === 'source' ? this.#listeners.get(d.name)?.listening() : undefined)));
  }

  /** Stops the check, pending debounced pokes and every listener. */
  async stop(): Promise<void> {
    if (this.#checkTimer) clearInterval(this.#checkTimer);
    this.#checkTimer = null;
    for (const t of this.#debounce.values()) clearTimeout(t);
    this.#debounce.clear();
    const listeners = [...this.#listeners.values()];
    this.#listeners.clear();
    await Promise.all(listeners.map((l) => l.stop()));
  }
}

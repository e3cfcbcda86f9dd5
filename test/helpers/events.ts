/**
 * An event recorder for a Replicator (after graphile-worker's `EventMonitor`): every event in
 * the order it came, typed arrays per event, a one-line log of the runs, and a promise for the
 * next event of a name.
 *
 * Listening is not free for every event: pgferry computes the keys of `rows:applied` and the
 * progress of copies only when someone listens. Pass `only` to record a subset where a test
 * must not change that.
 */
import type { PgferryError, Replicator, ReplicatorEvents } from '../../src/index.js';
import type { ConflictEvent, CopyProgressEvent, RowsAppliedEvent, RunResult, SyncErrorEvent, SyncStartEvent } from '../../src/index.js';

export type EventName = keyof ReplicatorEvents;
export type EventOf<K extends EventName> = Parameters<ReplicatorEvents[K]>[0];

const ALL: readonly EventName[] = ['sync:start', 'sync:complete', 'sync:error', 'error', 'conflict', 'rows:applied', 'copy:progress', 'validate:progress'];

/** The line `runLog` gets for an event, for the events that tell how runs go. */
const RUN_LOG: { [K in EventName]?: (e: EventOf<K>) => string } = {
  'sync:start': (e) => `start:${e.reason}`,
  'sync:complete': (e) => `complete:${e.status}`,
  'sync:error': (e) => `error:${e.error.code}:${e.willRetry}`,
  error: (e) => `fatal:${e.code}`,
};

export class EventRecorder {
  /** The recorded events by name. */
  readonly byName: { [K in EventName]: EventOf<K>[] } = {
    'sync:start': [],
    'sync:complete': [],
    'sync:error': [],
    error: [],
    conflict: [],
    'rows:applied': [],
    'copy:progress': [],
    'validate:progress': [],
  };
  /** Every recorded event, in order. */
  readonly all: { name: EventName; event: unknown }[] = [];
  /**
   * The runs in order, one line per event: `start:<reason>`, `complete:<status>`,
   * `error:<code>:<willRetry>`, `fatal:<code>`.
   */
  readonly runLog: string[] = [];

  readonly #rep: Replicator;
  readonly #listeners: [EventName, (e: unknown) => void][] = [];
  readonly #waiters: { name: EventName; predicate: (e: unknown) => boolean; resolve: (e: unknown) => void }[] = [];

  constructor(rep: Replicator, only: readonly EventName[] = ALL) {
    this.#rep = rep;
    for (const name of only) {
      const listener = (event: unknown) => this.#record(name, event);
      this.#listeners.push([name, listener]);
      rep.on(name, listener);
    }
  }

  get starts(): SyncStartEvent[] {
    return this.byName['sync:start'];
  }
  get completes(): RunResult[] {
    return this.byName['sync:complete'];
  }
  get errors(): SyncErrorEvent[] {
    return this.byName['sync:error'];
  }
  /** `error` events: background failures that will not be retried. */
  get fatal(): PgferryError[] {
    return this.byName.error;
  }
  get conflicts(): ConflictEvent[] {
    return this.byName.conflict;
  }
  get applied(): RowsAppliedEvent[] {
    return this.byName['rows:applied'];
  }
  get progress(): CopyProgressEvent[] {
    return this.byName['copy:progress'];
  }

  /** The next event named `name` (after this call) for which `predicate` holds. */
  next<K extends EventName>(name: K, predicate: (e: EventOf<K>) => boolean = () => true): Promise<EventOf<K>> {
    return new Promise((resolve) => {
      this.#waiters.push({ name, predicate: predicate as (e: unknown) => boolean, resolve: resolve as (e: unknown) => void });
    });
  }

  /** Stops listening. */
  release(): void {
    for (const [name, listener] of this.#listeners.splice(0)) this.#rep.off(name, listener);
  }

  #record(name: EventName, event: unknown): void {
    this.all.push({ name, event });
    (this.byName[name] as unknown[]).push(event);
    const line = RUN_LOG[name] as ((e: unknown) => string) | undefined;
    if (line) this.runLog.push(line(event));
    for (let i = 0; i < this.#waiters.length; i++) {
      const w = this.#waiters[i]!;
      if (w.name === name && w.predicate(event)) {
        this.#waiters.splice(i--, 1);
        w.resolve(event);
      }
    }
  }
}

/** Records every event of `rep` (or only those named in `only`) from now on. */
export function record(rep: Replicator, only?: readonly EventName[]): EventRecorder {
  return new EventRecorder(rep, only);
}

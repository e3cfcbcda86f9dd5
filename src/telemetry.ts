/**
 * Reporting through an OpenTelemetry Meter (`new Replicator({ meter })`). The Meter is typed by
 * the few methods pgferry calls, so `@opentelemetry/api` stays an optional peer dependency:
 * any Meter from it fits.
 */
import createDebug from 'debug';
import type { RunResult } from './types.js';

const debug = createDebug('pgferry:telemetry');

export type MetricAttributes = Record<string, string>;

/** An observable instrument (an `ObservableGauge`). */
export type ObservableLike = object;

/** The methods of an OpenTelemetry `Meter` that pgferry uses. */
export interface MeterLike {
  createCounter(name: string, options?: { description?: string; unit?: string }): { add(value: number, attributes?: MetricAttributes): void };
  createHistogram(name: string, options?: { description?: string; unit?: string }): { record(value: number, attributes?: MetricAttributes): void };
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): ObservableLike;
  addBatchObservableCallback(
    callback: (result: { observe(observable: ObservableLike, value: number, attributes?: MetricAttributes): void }) => void | Promise<void>,
    observables: ObservableLike[],
  ): void;
}

/** What the observable gauges read when the SDK collects: `metrics()`'s backlog and lag. */
export type BacklogReader = () => Promise<{ syncs: Record<string, { backlog: Record<string, number | null>; lagMs: number }> }>;

/**
 * Instruments: `pgferry.runs` (attributes `sync`, `status`), `pgferry.run.duration` (ms,
 * `sync`, `status`), `pgferry.rows.applied` and `pgferry.conflicts` (`sync`, `table`), and the
 * gauges `pgferry.backlog` (`sync`, `database`) and `pgferry.lag` (ms, `sync`).
 */
export class Telemetry {
  readonly #runs;
  readonly #duration;
  readonly #rows;
  readonly #conflicts;

  constructor(meter: MeterLike, read: BacklogReader) {
    this.#runs = meter.createCounter('pgferry.runs', { description: 'Runs finished by this instance' });
    this.#duration = meter.createHistogram('pgferry.run.duration', { description: 'Duration of runs', unit: 'ms' });
    this.#rows = meter.createCounter('pgferry.rows.applied', { description: 'Rows upserted or deleted on receivers' });
    this.#conflicts = meter.createCounter('pgferry.conflicts', { description: 'Conflicts settled' });
    const backlog = meter.createObservableGauge('pgferry.backlog', { description: 'Changed keys not yet delivered, per source' });
    const lag = meter.createObservableGauge('pgferry.lag', { description: 'Age of the oldest change not yet delivered', unit: 'ms' });
    meter.addBatchObservableCallback(async (result) => {
      try {
        const { syncs } = await read();
        for (const [sync, m] of Object.entries(syncs)) {
          for (const [database, keys] of Object.entries(m.backlog)) if (keys !== null) result.observe(backlog, keys, { sync, database });
          result.observe(lag, m.lagMs, { sync });
        }
      } catch (err) {
        debug('reading backlog for the meter failed: %s', (err as Error)?.message);
      }
    }, [backlog, lag]);
  }

  completed(result: RunResult): void {
    const { sync, status } = result;
    this.#runs.add(1, { sync, status });
    this.#duration.record(result.durationMs, { sync, status });
    for (const [table, t] of Object.entries(result.tables)) {
      if (t.upserted + t.deleted > 0) this.#rows.add(t.upserted + t.deleted, { sync, table });
      if (t.conflicts > 0) this.#conflicts.add(t.conflicts, { sync, table });
    }
  }

  failed(sync: string, durationMs: number): void {
    this.#runs.add(1, { sync, status: 'error' });
    this.#duration.record(durationMs, { sync, status: 'error' });
  }
}

/**
 * The tests' event recorder records what a Replicator emits. Tests that expect no errors
 * (`expect(ev.errors).toEqual([])`) rely on it: a recorder that heard nothing would pass them.
 */
import { describe, expect, it } from 'vitest';
import { PgferryError, Replicator, type RunResult } from '../../src/index.js';
import { record } from '../helpers/events.js';

function result(status: 'ok' | 'empty'): RunResult {
  const zero = { upserted: 0, deleted: 0, conflicts: 0 };
  return { sync: 's', runId: 'r1', status, reason: 'kick', startedAt: new Date(0), durationMs: 1, chunks: 1, tables: {}, totals: zero };
}

const failure = new PgferryError('SCHEMA_MISMATCH', 'column "extra" is missing');
const applied = { sync: 's', target: 'b', table: 'public.t', upserted: [{ id: 1 }], deleted: [] };

/** Emits one run that fails and one that applies rows, as the library would. */
function emitRuns(rep: Replicator): void {
  rep.emit('sync:start', { sync: 's', runId: 'r1', reason: 'autokick' });
  rep.emit('sync:error', { sync: 's', runId: 'r1', error: failure, willRetry: false });
  rep.emit('error', failure);
  rep.emit('sync:start', { sync: 's', runId: 'r2', reason: 'kick' });
  rep.emit('rows:applied', applied);
  rep.emit('sync:complete', result('ok'));
}

describe('EventRecorder', () => {
  it('records every event in order, per event, with a log of the runs', () => {
    const rep = new Replicator();
    const ev = record(rep);
    emitRuns(rep);
    expect(ev.all.map((e) => e.name)).toEqual(['sync:start', 'sync:error', 'error', 'sync:start', 'rows:applied', 'sync:complete']);
    expect(ev.starts.map((s) => s.reason)).toEqual(['autokick', 'kick']);
    expect(ev.errors).toEqual([{ sync: 's', runId: 'r1', error: failure, willRetry: false }]);
    expect(ev.fatal).toEqual([failure]);
    expect(ev.applied).toEqual([applied]);
    expect(ev.completes).toEqual([result('ok')]);
    expect(ev.conflicts).toEqual([]);
    expect(ev.progress).toEqual([]);
    expect(ev.runLog).toEqual(['start:autokick', 'error:SCHEMA_MISMATCH:false', 'fatal:SCHEMA_MISMATCH', 'start:kick', 'complete:ok']);
  });

  it('only listens to the events named in `only`, and to nothing after release()', () => {
    const rep = new Replicator();
    const ev = record(rep, ['sync:error', 'error']);
    expect(rep.listenerCount('rows:applied')).toBe(0);
    emitRuns(rep);
    expect(ev.all.map((e) => e.name)).toEqual(['sync:error', 'error']);
    expect(ev.starts).toEqual([]);
    ev.release();
    expect(rep.listenerCount('sync:error')).toBe(0);
    emitRuns(rep);
    expect(ev.all).toHaveLength(2);
  });

  it('next() resolves with the next matching event after the call', async () => {
    const rep = new Replicator();
    const ev = record(rep);
    rep.emit('sync:complete', result('ok'));
    const nextComplete = ev.next('sync:complete');
    const nextEmpty = ev.next('sync:complete', (r) => r.status === 'empty');
    let settled = false;
    void nextEmpty.then(() => (settled = true));
    rep.emit('sync:complete', result('ok'));
    await expect(nextComplete).resolves.toMatchObject({ status: 'ok' });
    await Promise.resolve();
    expect(settled).toBe(false);
    rep.emit('sync:complete', result('empty'));
    await expect(nextEmpty).resolves.toMatchObject({ status: 'empty' });
  });
});

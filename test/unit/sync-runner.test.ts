/**
 * The scheduler's runner for one sync, with fake hooks (no database) and fake timers: one run
 * at a time; requests during a run share one more run after it; background runs retry
 * transient failures with backoff and park on failures that need attention.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SyncRunner, type RunnerHooks } from '../../src/scheduler/sync-runner.js';
import { PgferryError } from '../../src/errors.js';
import type { RunReason, RunResult } from '../../src/types.js';

const RETRY = { minDelayMs: 100, maxDelayMs: 1_000 };

const transient = () => new PgferryError('CONNECTION_FAILED', 'connection lost', { transient: true });
const needsAttention = () => new PgferryError('SCHEMA_MISMATCH', 'column "extra" is missing');

interface FakeRun {
  runId: string;
  reason: RunReason;
  /** Ends the run successfully; returns its result. */
  succeed(): RunResult;
  fail(error: PgferryError): void;
}

/** A runner whose runs the test ends by hand, and what its hooks saw. */
function fakeRunner() {
  const runs: FakeRun[] = [];
  const events: string[] = [];
  const errors: { error: PgferryError; willRetry: boolean; retryInMs?: number }[] = [];
  const hooks: RunnerHooks = {
    run: ({ runId, reason }) =>
      new Promise<RunResult>((resolve, reject) => {
        runs.push({
          runId,
          reason,
          succeed: () => {
            const result = resultOf(runId, reason);
            resolve(result);
            return result;
          },
          fail: reject,
        });
      }),
    onStart: ({ reason }) => {
      events.push(`start:${reason}`);
    },
    onComplete: (r) => events.push(`complete:${r.reason}`),
    onError: (_, error, willRetry, retryInMs) => {
      events.push(`error:${error.code}:${willRetry}`);
      errors.push({ error, willRetry, ...(retryInMs !== undefined && { retryInMs }) });
    },
  };
  const runner = new SyncRunner('s', hooks, RETRY);
  /** The run in progress (the last one started). */
  const current = () => runs.at(-1)!;
  return { runner, runs, events, errors, current };
}

function resultOf(runId: string, reason: RunReason): RunResult {
  const zero = { upserted: 0, deleted: 0, conflicts: 0 };
  return { sync: 's', runId, status: 'ok', reason, startedAt: new Date(0), durationMs: 0, chunks: 0, tables: {}, totals: zero };
}

/** Lets every promise callback that is due run (no time passes). */
const settle = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('a pause before a booked background run', () => {
  it('waits twice as long as the run before it took (at most 100 ms); an idle request and a kick never wait', async () => {
    const { runner, runs } = fakeRunner();
    void runner.request('autokick');
    expect(runs).toHaveLength(1); // idle: at once
    const booked = runner.request('autokick');
    await vi.advanceTimersByTimeAsync(30);
    runs[0]!.succeed();
    await settle();
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(59);
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(2); // 60 ms after the 30 ms run

    // A long run: the pause is capped.
    const next = runner.request('check');
    await vi.advanceTimersByTimeAsync(5_000);
    runs[1]!.succeed();
    await booked;
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(3);

    // A kick during the pause ends it at once.
    const kicked = runner.request('autokick');
    await vi.advanceTimersByTimeAsync(1_000);
    runs[2]!.succeed();
    await next;
    await settle();
    expect(runs).toHaveLength(3);
    void runner.request('kick');
    await settle();
    expect(runs).toHaveLength(4);
    expect(runs[3]!.reason).toBe('kick');
    runs[3]!.succeed();
    await kicked;
  });
});

describe('one run at a time', () => {
  it('a request while a run is in flight starts no second run until the first ends', async () => {
    const { runner, runs } = fakeRunner();
    expect(runner.running).toBe(false);
    const first = runner.request('kick');
    expect(runs).toHaveLength(1);
    expect(runner.running).toBe(true);

    const second = runner.request('kick');
    await settle();
    expect(runs).toHaveLength(1);

    const r1 = runs[0]!.succeed();
    await expect(first).resolves.toBe(r1);
    await settle();
    expect(runs).toHaveLength(2);
    const r2 = runs[1]!.succeed();
    await expect(second).resolves.toBe(r2);
    expect(r2.runId).not.toBe(r1.runId);
    await settle();
    expect(runner.running).toBe(false);
  });

  it('every request during a run joins one booked run: exactly one more run, shared by all', async () => {
    const { runner, runs, events } = fakeRunner();
    const first = runner.request('kick');
    const joined = [runner.request('kick'), runner.request('autokick'), runner.request('kick'), runner.request('check')];
    for (const p of joined) expect(p).toBe(joined[0]);

    runs[0]!.succeed();
    await first;
    await settle();
    expect(runs).toHaveLength(2);
    const r2 = runs[1]!.succeed();
    for (const p of joined) await expect(p).resolves.toBe(r2);
    await settle();
    expect(runs).toHaveLength(2);
    expect(events).toEqual(['start:kick', 'complete:kick', 'start:kick', 'complete:kick']);

    // Idle again: the next request starts a run at once.
    void runner.request('check');
    expect(runs).toHaveLength(3);
    runs[2]!.succeed();
  });

  it.each<[RunReason[], RunReason[]]>([
    [['check', 'kick', 'autokick'], ['kick']],
    [['autokick', 'retry', 'kick'], ['kick']],
    [['kick', 'check'], ['kick']],
    [['check', 'autokick'], ['check', 'autokick']],
  ])('requests %j during a run book a run with reason %j', async (reasons, expected) => {
    const { runner, runs } = fakeRunner();
    void runner.request('autokick');
    const booked = reasons.map((r) => runner.request(r));
    runs[0]!.succeed();
    await settle();
    expect(runs).toHaveLength(2);
    expect(expected).toContain(runs[1]!.reason);
    runs[1]!.succeed();
    await Promise.all(booked);
  });

  it('a booked run still runs when the run before it failed, and each request gets its own run\'s outcome', async () => {
    const { runner, runs } = fakeRunner();
    const first = runner.request('kick');
    const second = runner.request('kick');
    const err = transient();
    runs[0]!.fail(err);
    await expect(first).rejects.toBe(err);
    await settle();
    expect(runs).toHaveLength(2);
    const r2 = runs[1]!.succeed();
    await expect(second).resolves.toBe(r2);
  });
});

describe('inFlight, lastResult, lastError', () => {
  it('inFlight is null when idle, else what settles last: the run in flight, or the booked run', async () => {
    const { runner, runs } = fakeRunner();
    expect(runner.inFlight).toBeNull();
    const first = runner.request('kick');
    expect(runner.inFlight).toBe(first);
    const booked = runner.request('kick');
    expect(runner.inFlight).toBe(booked);
    runs[0]!.succeed();
    await first;
    expect(runner.inFlight).toBe(booked);
    await settle();
    // The booked run has started: inFlight is that run, settling with it.
    const second = runner.inFlight;
    expect(second).not.toBeNull();
    const r2 = runs[1]!.succeed();
    await expect(second).resolves.toBe(r2);
    await expect(booked).resolves.toBe(r2);
    await settle();
    expect(runner.inFlight).toBeNull();
  });

  it('lastResult is the last successful run; lastError the last failure, cleared by the next success', async () => {
    const { runner, current } = fakeRunner();
    expect(runner.lastResult).toBeNull();
    expect(runner.lastError).toBeNull();

    const ok = runner.request('kick');
    const r1 = current().succeed();
    await ok;
    expect(runner.lastResult).toBe(r1);
    expect(runner.lastError).toBeNull();

    const bad = runner.request('kick');
    const err = needsAttention();
    current().fail(err);
    await expect(bad).rejects.toBe(err);
    expect(runner.lastError).toBe(err);
    expect(runner.lastResult).toBe(r1);

    const again = runner.request('kick');
    const r3 = current().succeed();
    await again;
    expect(runner.lastResult).toBe(r3);
    expect(runner.lastError).toBeNull();
  });
});

describe('background retries', () => {
  it('a transient failure is retried after a backoff that grows from minDelayMs up to maxDelayMs', async () => {
    const { runner, runs, errors, current } = fakeRunner();
    runner.setBackground(true);
    runner.poke('autokick');
    const delays: number[] = [];
    for (let failure = 1; failure <= 6; failure++) {
      current().fail(transient());
      await settle();
      const e = errors.at(-1)!;
      expect(e.willRetry).toBe(true);
      delays.push(e.retryInMs!);
      // Nothing runs before the delay it announced; the retry runs right at it.
      await vi.advanceTimersByTimeAsync(e.retryInMs! - 1);
      expect(runs).toHaveLength(failure);
      await vi.advanceTimersByTimeAsync(1);
      expect(runs).toHaveLength(failure + 1);
      expect(current().reason).toBe('retry');
    }
    // Full jitter: between half and all of min · 2^(n-1), capped at maxDelayMs.
    const bounds = [100, 200, 400, 800, 1_000, 1_000];
    delays.forEach((d, i) => {
      expect(d, `delay after failure ${i + 1}: ${delays.join(', ')}`).toBeGreaterThanOrEqual(bounds[i]! / 2);
      expect(d).toBeLessThanOrEqual(bounds[i]!);
    });

    // A success ends the retries and resets the backoff.
    current().succeed();
    await settle();
    expect(runner.lastError).toBeNull();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs).toHaveLength(7);
    runner.poke('autokick');
    current().fail(transient());
    await settle();
    expect(errors.at(-1)!.retryInMs).toBeLessThanOrEqual(RETRY.minDelayMs);
    runner.setBackground(false);
  });

  it('with background off, a transient failure is reported with willRetry false and not retried', async () => {
    const { runner, runs, errors, events } = fakeRunner();
    const p = runner.request('kick');
    const err = transient();
    runs[0]!.fail(err);
    await expect(p).rejects.toBe(err);
    expect(errors).toEqual([{ error: err, willRetry: false }]);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(1);
    expect(events).toEqual(['start:kick', 'error:CONNECTION_FAILED:false']);
  });

  it('setBackground(false) cancels a retry that is waiting, leaving no timer', async () => {
    const { runner, runs, errors } = fakeRunner();
    runner.setBackground(true);
    runner.poke('check');
    runs[0]!.fail(transient());
    await settle();
    expect(errors[0]!.willRetry).toBe(true);
    expect(vi.getTimerCount()).toBe(1);
    runner.setBackground(false);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(1);
  });
});

describe('parking on a failure that retrying cannot fix', () => {
  it('no background request runs the sync again; a kick does, and un-parks it', async () => {
    const { runner, runs, errors, current } = fakeRunner();
    runner.setBackground(true);
    runner.poke('autokick');
    current().fail(needsAttention());
    await settle();
    expect(errors).toEqual([{ error: expect.objectContaining({ code: 'SCHEMA_MISMATCH' }), willRetry: false }]);

    for (const reason of ['autokick', 'check', 'retry'] as const) runner.poke(reason);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(1);
    expect(runner.running).toBe(false);

    const kicked = runner.request('kick');
    expect(runs).toHaveLength(2);
    expect(current().reason).toBe('kick');
    const r = current().succeed();
    await expect(kicked).resolves.toBe(r);

    // Un-parked: background requests run again.
    runner.poke('autokick');
    expect(runs).toHaveLength(3);
    expect(current().reason).toBe('autokick');
    current().succeed();
    runner.setBackground(false);
  });

  it('background requests booked while the failing run was in flight are dropped; a booked kick runs', async () => {
    const { runner, runs, current } = fakeRunner();
    runner.setBackground(true);
    runner.poke('autokick');
    runner.poke('check');
    runner.poke('autokick');
    current().fail(needsAttention());
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(1);

    runner.poke('check'); // still parked
    expect(runs).toHaveLength(1);
    const kicked = runner.request('kick');
    runner.poke('autokick'); // booked while the kick's run is in flight
    const err = needsAttention();
    current().fail(err);
    await expect(kicked).rejects.toBe(err);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toHaveLength(2);

    // A kick booked during a run that parks the sync is not dropped.
    const next = runner.request('kick');
    const booked = runner.request('kick');
    current().fail(needsAttention());
    await expect(next).rejects.toMatchObject({ code: 'SCHEMA_MISMATCH' });
    await settle();
    expect(runs).toHaveLength(4);
    expect(current().reason).toBe('kick');
    const r = current().succeed();
    await expect(booked).resolves.toBe(r);
    runner.setBackground(false);
  });
});

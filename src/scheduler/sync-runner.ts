/**
 * Runs of one sync: one at a time; a kick during a run joins it and books one more run after
 * it (shared by every kick that arrives meanwhile); background runs retry with backoff.
 */
import createDebug from 'debug';
import { randomUUID } from 'node:crypto';
import { PgferryError, isTransientDbError } from '../errors.js';
import type { RunContext } from '../sync/context.js';
import type { RunReason, RunResult } from '../types.js';

const debug = createDebug('pgferry:scheduler');

/**
 * Under steady writes, background runs would follow each other back to back, each paying a
 * run's fixed cost on the sources the application writes to. A background run booked during
 * a run therefore waits twice as long as that run took, at most MAX_BACKGROUND_PAUSE_MS: under
 * load a run carries more rows and runs less often (runs busy a third of the time instead of
 * half: TPC-B beside the replicator ran a fifth faster, see BENCHMARKS.md); an idle sync's
 * first run after a commit never waits, and a kick cuts the wait short.
 */
const PAUSE_TIMES_RUN = 2;
const MAX_BACKGROUND_PAUSE_MS = 100;

export interface RunnerHooks {
  run(ctx: RunContext): Promise<RunResult>;
  onStart(ctx: RunContext): void;
  onComplete(result: RunResult): void;
  onError(ctx: RunContext, error: PgferryError, willRetry: boolean, retryInMs?: number): void;
}

/** What a request may ask of the run that serves it. */
export interface RunOptions {
  /** Copy whole tables to the targets in this run, as a first copy would. */
  onetimecopy?: 'always' | 'ifEmpty';
}

export class SyncRunner {
  readonly name: string;
  readonly #hooks: RunnerHooks;
  #current: Promise<RunResult> | null = null;
  #next: Promise<RunResult> | null = null;
  #nextReason: RunReason = 'kick';
  #nextCopy: RunOptions['onetimecopy'];
  #retryTimer: NodeJS.Timeout | null = null;
  #failures = 0;
  #background = false;
  #retry: { minDelayMs: number; maxDelayMs: number };
  /** Set by a failure that retrying cannot fix; cleared by the next kick. */
  #parked = false;
  /** Ends the pause before a booked background run (a kick arrived). */
  #endPause: (() => void) | null = null;
  #currentStartedAt = 0;
  lastResult: RunResult | null = null;
  lastError: PgferryError | null = null;

  constructor(name: string, hooks: RunnerHooks, retry: { minDelayMs: number; maxDelayMs: number }) {
    this.name = name;
    this.#hooks = hooks;
    this.#retry = retry;
  }

  get running(): boolean {
    return this.#current !== null;
  }

  /** A run is booked: it will start later (after the current run, and its pause). */
  get booked(): boolean {
    return this.#next !== null;
  }

  /** Whatever is in flight or booked (for a graceful stop). */
  get inFlight(): Promise<unknown> | null {
    return this.#next ?? this.#current;
  }

  /** Enables or disables background retries (on while the replicator is started). */
  setBackground(on: boolean): void {
    this.#background = on;
    if (!on && this.#retryTimer) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
    }
  }

  /** Requests a run; resolves with the result of the run that covers this request. */
  request(reason: RunReason, options: RunOptions = {}): Promise<RunResult> {
    if (reason === 'kick') this.#parked = false;
    // (A booked run waiting out its pause has no current run before it: it is joined.)
    if (!this.#current && !this.#next) return this.#launch(reason, options.onetimecopy);
    if (!this.#next) {
      this.#nextReason = reason;
      this.#nextCopy = options.onetimecopy;
      const after = this.#current!.then(
        () => this.#pause(Date.now() - this.#currentStartedAt),
        () => undefined,
      );
      this.#next = after.then(() => {
        this.#next = null;
        // A failure retrying cannot fix parked the sync meanwhile: only a kick runs it again.
        if (this.#parked && this.#nextReason !== 'kick' && this.lastError) throw this.lastError;
        const copy = this.#nextCopy;
        this.#nextCopy = undefined;
        return this.#launch(this.#nextReason, copy);
      });
    } else {
      if (reason === 'kick') {
        this.#nextReason = 'kick';
        this.#endPause?.();
      }
      // Requests that share the booked run share its copy; 'always' asks for more than 'ifEmpty'.
      if (options.onetimecopy === 'always' || (options.onetimecopy && !this.#nextCopy)) this.#nextCopy = options.onetimecopy;
    }
    return this.#next;
  }

  /** Before a booked background run: twice as long as the run before it took (see MAX_BACKGROUND_PAUSE_MS). */
  #pause(previousMs: number): Promise<void> | undefined {
    if (this.#nextReason === 'kick') return undefined;
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const end = (): void => {
        clearTimeout(timer);
        this.#endPause = null;
        resolve();
      };
      timer = setTimeout(end, Math.min(PAUSE_TIMES_RUN * previousMs, MAX_BACKGROUND_PAUSE_MS));
      this.#endPause = end;
    });
  }

  /** A background request: errors are reported through events, never thrown. */
  poke(reason: RunReason): void {
    if (this.#parked && reason !== 'kick') return;
    this.request(reason).catch(() => undefined);
  }

  #launch(reason: RunReason, onetimecopy?: RunOptions['onetimecopy']): Promise<RunResult> {
    const ctx: RunContext = { runId: randomUUID(), reason, startedAt: new Date(), ...(onetimecopy && { onetimecopy }) };
    const p = (async () => {
      this.#hooks.onStart(ctx);
      try {
        const result = await this.#hooks.run(ctx);
        this.#failures = 0;
        this.lastResult = result;
        this.lastError = null;
        this.#hooks.onComplete(result);
        return result;
      } catch (err) {
        const error = err as PgferryError;
        this.lastError = error;
        const transient = isTransientDbError(error);
        const willRetry = this.#background && transient;
        let delay: number | undefined;
        if (willRetry) {
          this.#failures++;
          delay = this.#backoff();
          this.#scheduleRetry(delay);
        } else if (this.#background && !transient) {
          this.#parked = true;
        }
        this.#hooks.onError(ctx, error, willRetry, delay);
        throw error;
      }
    })();
    this.#current = p;
    this.#currentStartedAt = Date.now();
    const clear = () => {
      if (this.#current === p) this.#current = null;
    };
    p.then(clear, clear);
    return p;
  }

  #backoff(): number {
    const { minDelayMs, maxDelayMs } = this.#retry;
    const exp = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.#failures - 1, 20));
    // Full jitter between half and all of the exponential delay.
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }

  #scheduleRetry(delay: number): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    debug('%s: retry in %dms', this.name, delay);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#background) this.poke('retry');
    }, delay);
    this.#retryTimer.unref();
  }
}

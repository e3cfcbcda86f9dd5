/** What every scenario is given, and what it gives back. */
import type { ScenarioResult } from './report.js';
import type { BenchServer } from './pg.js';
import type { ClientTools } from './pgbench.js';

export interface BenchContext {
  quick: boolean;
  /** Longer measurements (pgbench 2 x 10 s per phase, latency 60 s at 1/s, ...): about 14 minutes. */
  long: boolean;
  /** Repetitions of each scenario's measurement. */
  runs: number;
  /** Whether --runs was given (then every measurement runs that many times). */
  runsGiven: boolean;
  /** First server: the source side. */
  a: BenchServer;
  /** Second server: the target side (a second source in multi-master). */
  b: BenchServer;
  tools: ClientTools | null;
  log(msg: string): void;
  /** Measurements one scenario leaves for another (e.g. RSS samples of bulk for memory). */
  shared: Map<string, unknown>;
  /** Scenario names selected for this invocation. */
  selected: Set<string>;
}

export type ScenarioOutput = Pick<ScenarioResult, 'figures' | 'notes' | 'raw'> & { error?: string };

export interface Scenario {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioOutput>;
}

export function requireTools(ctx: BenchContext): ClientTools {
  if (!ctx.tools) throw new Error('pgbench/psql not found (looked in /usr/lib/postgresql/{18,17,16,15}/bin); install postgresql-client and the contrib package');
  return ctx.tools;
}

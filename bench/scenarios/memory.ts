/**
 * Scenario 5, memory: peak RSS of this process while the replicator moves the rows of the
 * bulk scenario (sampled every 50 ms during each kick), against the RSS just before the kick
 * and the peak during the raw COPY pipe of the same rows in the same process. Reuses the bulk
 * scenario's samples when it ran in this invocation, else measures the largest size itself.
 */
import type { Scenario, ScenarioOutput } from '../lib/context.js';
import { figure, type Figure } from '../lib/report.js';
import { bulkRuns, bulkSizes, label, measureIncremental, type IncrementalRun } from './bulk.js';

export const memory: Scenario = {
  name: 'memory',
  title: 'Peak RSS of the replicating process (during the bulk scenario)',
  async run(ctx): Promise<ScenarioOutput> {
    let all = ctx.shared.get('bulk') as Map<number, IncrementalRun[]> | undefined;
    let reused = true;
    if (!all) {
      reused = false;
      const n = Math.max(...bulkSizes(ctx));
      all = new Map([[n, await measureIncremental(ctx, n, bulkRuns(ctx, n))]]);
    }
    const figures: Figure[] = [];
    for (const [n, runs] of all) {
      const nRuns = runs.length !== ctx.runs ? ` [${runs.length} runs]` : '';
      figures.push(figure({
        metric: `peak RSS, kick moving ${label(n)} rows${nRuns}`,
        unit: 'MB',
        runs: runs.map((r) => r.rss.peakMb),
        reference: { label: 'raw COPY pipe in-process', runs: runs.map((r) => r.rss.refPeakMb) },
        vs: { kind: 'delta', runs: runs.map((r) => r.rss.peakMb - r.rss.refPeakMb) },
        ...(n >= 1_000_000 && { goal: { text: '< 200 MB', on: 'value' as const, cmp: '<' as const, target: 200 } }),
      }));
      figures.push(figure({
        metric: `RSS growth during the kick (${label(n)} rows)${nRuns}`,
        unit: 'MB',
        runs: runs.map((r) => r.rss.peakMb - r.rss.baselineMb),
        reference: { label: 'baseline RSS before the kick', runs: runs.map((r) => r.rss.baselineMb) },
      }));
    }
    const notes = [
      reused
        ? 'Samples taken during the bulk scenario of this invocation (no listener on rows:applied, so no keys are returned to the process).'
        : 'Measured on its own (bulk did not run in this invocation).',
    ];
    return { figures, notes, raw: Object.fromEntries([...all].map(([n, runs]) => [n, runs.map((r) => r.rss)])) };
  },
};

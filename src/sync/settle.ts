/**
 * Phase 3, settle (multi-master): keys changed on two or more sources are conflicts. Each is
 * decided by the sync's strategy (or its resolver); the losers' keys leave their key tables,
 * and rows a resolver merged are kept to be written everywhere.
 */
import { decide, strategyFor } from '../conflict/strategies.js';
import { currentRow, dropKeys, findConflicts, type FoundConflict } from '../delta/changed-keys.js';
import { PgferryError } from '../errors.js';
import type { ConflictRecord, ConflictResolver, Row } from '../types.js';
import type { Run, RunTable } from './context.js';

export async function settleConflicts(run: Run): Promise<void> {
  if (!run.incremental || run.sources.length < 2) return;
  for (const t of run.tables) await settleTable(run, t);
}

interface Outcome {
  resolution: 'winner' | 'merged' | 'skip';
  winner: string | null;
  /** The contenders' rows, when they were read (for a resolver). */
  rows?: Record<string, Row | null>;
}

async function settleTable(run: Run, t: RunTable): Promise<void> {
  const busy = [...run.reads.entries()].filter(([name]) => (t.counts.get(name) ?? 0) > 0);
  if (busy.length < 2) return;
  const conflicts = await findConflicts(
    busy.map(([, r]) => r.session),
    t.info,
    t.temp,
  );
  if (conflicts.length === 0) return;
  const strategy = strategyFor(run.plan.config.conflictStrategy, t.display);
  const drop = new Map<string, string[]>(busy.map(([name]) => [name, []]));
  const history: ConflictRecord[] = [];
  for (const c of conflicts) {
    const contenders = c.contenders.map((x) => x.db);
    const decision = decide(strategy, c.contenders, run.order);
    let outcome: Outcome;
    if (decision.kind === 'abort') {
      throw new PgferryError(
        'CONFLICT',
        `Sync "${run.sync}": ${conflicts.length} conflict(s) in ${t.display}, e.g. key ${JSON.stringify(c.key)} changed on ${contenders.join(' and ')}; conflictStrategy is 'abort', so nothing was applied. Settle the rows by hand or choose another strategy.`,
        { sync: run.sync, table: t.display },
      );
    } else if (decision.kind === 'winner') {
      outcome = { resolution: 'winner', winner: decision.db };
    } else if (decision.kind === 'skip') {
      outcome = { resolution: 'skip', winner: null };
    } else {
      outcome = await askResolver(run, t, c, strategy as ConflictResolver);
    }
    for (const x of c.contenders) if (x.db !== outcome.winner) drop.get(x.db)!.push(x.keyText);
    t.result.conflicts++;
    run.deps.emit('conflict', { sync: run.sync, table: t.display, key: c.key, resolution: outcome.resolution, winner: outcome.winner, databases: contenders });
    if (run.deps.recordConflicts) {
      const rows = outcome.rows ?? (await contenderRows(run, t, c));
      history.push({ sync: run.sync, table: t.display, key: c.key, resolution: outcome.resolution, winner: outcome.winner, at: new Date(), rows });
    }
  }
  // Kept once the run committed: a run that rolls back settles them again next time.
  if (history.length > 0) run.afterwards.push(async () => run.deps.recordConflicts!(history));
  for (const [db, keys] of drop) {
    if (keys.length === 0) continue;
    await dropKeys(run.reads.get(db)!.session, t.info, t.temp, keys);
    t.counts.set(db, (t.counts.get(db) ?? 0) - keys.length);
  }
}

/** Gives a custom resolver the contenders' current rows; checks what it answers. */
async function askResolver(run: Run, t: RunTable, c: FoundConflict, resolver: ConflictResolver): Promise<Outcome> {
  const contenders = c.contenders.map((x) => x.db);
  const rows = await contenderRows(run, t, c);
  const changedAt = Object.fromEntries(c.contenders.map((x) => [x.db, x.changedAt]));
  // The resolver gets its own copy: what it does to the rows does not reach the history.
  const answer = await resolver({ sync: run.sync, table: t.display, key: c.key, rows: copyRows(rows), changedAt });
  if (answer === 'skip') return { resolution: 'skip', winner: null, rows };
  if (answer && typeof answer === 'object' && 'winner' in answer && contenders.includes(answer.winner)) {
    return { resolution: 'winner', winner: answer.winner, rows };
  }
  if (answer && typeof answer === 'object' && 'row' in answer && answer.row && typeof answer.row === 'object') {
    t.merged.push({ ...answer.row, ...c.key });
    return { resolution: 'merged', winner: null, rows };
  }
  throw new PgferryError(
    'CONFLICT',
    `Sync "${run.sync}": the conflict resolver for ${t.display} returned ${JSON.stringify(answer)} for key ${JSON.stringify(c.key)}; expected { winner: one of ${contenders.join(', ')} }, { row }, or 'skip'.`,
    { sync: run.sync, table: t.display },
  );
}

/** The current row of the key on each contender (one query each), in its read transaction. */
async function contenderRows(run: Run, t: RunTable, c: FoundConflict): Promise<Record<string, Row | null>> {
  const rows: Record<string, Row | null> = {};
  for (const x of c.contenders) rows[x.db] = await currentRow(run.reads.get(x.db)!.session, t.info, c.key);
  return rows;
}

function copyRows(rows: Record<string, Row | null>): Record<string, Row | null> {
  return Object.fromEntries(Object.entries(rows).map(([db, row]) => [db, row && { ...row }]));
}

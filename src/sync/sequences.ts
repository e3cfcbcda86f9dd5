/**
 * Phase 7, sequences (not transactional): each sequence of the sync is set on every target
 * (and fullcopy database) that is PostgreSQL to the sources' furthest value, with its increment and bounds. The
 * sources keep their own: two sources must hand out different ids (odd and even, or disjoint
 * ranges), and forcing one's increment and position on the other would make them collide.
 */
import { readSequence } from '../catalog/tables.js';
import { winningSequence, writeSequence } from '../apply/sequences.js';
import type { Session } from '../db/session.js';
import { displayName } from '../sql/ident.js';
import type { Run } from './context.js';

export async function syncSequences(run: Run): Promise<void> {
  for (const q of run.relations) {
    if (q.kind !== 'sequence') continue;
    // The sources' read sessions are free again (their transactions committed): one
    // connection per database is all a run needs.
    const sessions = new Map<string, Session>();
    for (const d of run.plan.databases) {
      if (run.isForeign(d.name)) continue; // sequences stay in PostgreSQL
      const s = run.reads.get(d.name)?.session ?? (await run.open(d.name));
      await s.begin();
      sessions.set(d.name, s);
    }
    const states = [];
    for (const name of run.sources) states.push(await readSequence(sessions.get(name)!.client, q));
    const want = winningSequence(states);
    for (const [name, s] of sessions) if (!run.sources.includes(name)) await writeSequence(s, q, want);
    for (const [name, s] of sessions) {
      await s.commit();
      if (!run.reads.has(name)) await s.close();
    }
    run.sequences[displayName(q)] = want.lastValue.toString();
  }
}

/**
 * Sequences named in a sync: the value furthest along in the direction of the increment wins
 * among the sources, and the winner's increment and bounds are set everywhere else.
 */
import { readSequence, type SequenceState } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { qualified, type QualifiedName } from '../sql/ident.js';

/** The state that wins: the furthest value in the increment's direction (used values beat unused). */
export function winningSequence(states: SequenceState[]): SequenceState {
  const pos = (x: SequenceState) => (x.isCalled ? x.lastValue : x.lastValue - x.increment);
  return states.reduce((best, x) => {
    const up = best.increment > 0n;
    return (up ? pos(x) > pos(best) : pos(x) < pos(best)) ? x : best;
  });
}

/** Sets the sequence on a database to `want` (parameters first, then the value). Returns whether it changed. */
export async function writeSequence(s: Session, q: QualifiedName, wanted: SequenceState): Promise<boolean> {
  const have = await readSequence(s.client, q);
  // A target already further along (it handed out ids itself, e.g. after a switch-over)
  // is never moved back: that would hand the same ids out again.
  const here = { ...wanted, lastValue: have.lastValue, isCalled: have.isCalled };
  const inBounds = have.lastValue >= wanted.min && have.lastValue <= wanted.max;
  const want = inBounds ? winningSequence([wanted, here]) : wanted;
  const sameParams = have.increment === want.increment && have.min === want.min && have.max === want.max && have.start === want.start && have.cycle === want.cycle;
  if (!sameParams) {
    await s.query(
      // RESTART in the same statement: the old position may lie outside the new bounds.
      `ALTER SEQUENCE ${qualified(q)} INCREMENT BY ${want.increment} MINVALUE ${want.min} MAXVALUE ${want.max} START WITH ${want.start} RESTART WITH ${want.lastValue} ${want.cycle ? 'CYCLE' : 'NO CYCLE'}`,
    );
  }
  if (sameParams && have.lastValue === want.lastValue && have.isCalled === want.isCalled) return false;
  await s.query(`SELECT pg_catalog.setval($1::regclass, $2::bigint, $3)`, [qualified(q), want.lastValue.toString(), want.isCalled]);
  return true;
}

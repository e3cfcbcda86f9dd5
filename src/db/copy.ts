import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Session } from './session.js';

/**
 * Streams `COPY ... TO STDOUT` on one connection into `COPY ... FROM STDIN` on another, with
 * backpressure; rows are never parsed. A COPY cut short leaves either connection in an unknown
 * state, so both are marked for destruction then. Returns the rows the receiver took in.
 */
export async function pipeCopy(from: Session, to: Session, outSql: string, inSql: string): Promise<number> {
  const reader = from.client.query(copyTo(outSql));
  const writer = to.client.query(copyFrom(inSql));
  try {
    await pipeline(reader, writer);
  } catch (err) {
    from.markBroken(err as Error);
    to.noteError(err);
    throw to.db.wrap(err);
  }
  return writer.rowCount;
}

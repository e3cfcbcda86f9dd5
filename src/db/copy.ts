import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Session } from './session.js';

/**
 * Streams `COPY ... TO STDOUT` on one connection into `COPY ... FROM STDIN` on another (through
 * `through`, when given), with backpressure; rows are never parsed. A COPY cut short leaves
 * either connection in an unknown state, so both are marked for destruction then. Returns the
 * rows the receiver took in.
 */
export async function pipeCopy(from: Session, to: Session, outSql: string, inSql: string, through?: Transform): Promise<number> {
  const reader = from.client.query(copyTo(outSql));
  const writer = to.client.query(copyFrom(inSql));
  try {
    await (through ? pipeline(reader, through, writer) : pipeline(reader, writer));
  } catch (err) {
    from.markBroken(err as Error);
    to.noteError(err);
    throw to.db.wrap(err);
  }
  return writer.rowCount;
}

/**
 * Passes COPY text data through unchanged, counting the rows whose first column is false
 * (`f`). In text format a row ends at a newline, and a newline in a value is written `\\n`.
 */
export class FirstColumnFalse extends Transform {
  count = 0;
  #lineStart = true;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (chunk.length > 0) {
      if (this.#lineStart && chunk[0] === F) this.count++;
      for (let nl = chunk.indexOf(NEWLINE); nl !== -1 && nl + 1 < chunk.length; nl = chunk.indexOf(NEWLINE, nl + 1)) {
        if (chunk[nl + 1] === F) this.count++;
      }
      this.#lineStart = chunk[chunk.length - 1] === NEWLINE;
    }
    done(null, chunk);
  }
}

const NEWLINE = 0x0a;
const F = 0x66;

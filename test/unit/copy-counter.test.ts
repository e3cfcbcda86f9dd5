/**
 * FirstColumnFalse, with no server: it passes COPY text data through unchanged and counts the
 * rows whose first column is false, wherever the chunks happen to split the rows.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { FirstColumnFalse } from '../../src/db/copy.js';

/** Sends `chunks` through a counter; returns what came out and the count. */
async function through(chunks: Buffer[]): Promise<{ out: string; count: number }> {
  const counter = new FirstColumnFalse();
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      parts.push(chunk);
      done();
    },
  });
  await pipeline(Readable.from(chunks, { objectMode: false }), counter, sink);
  return { out: Buffer.concat(parts).toString(), count: counter.count };
}

// Rows as COPY text writes them: the first column a boolean, a value with a newline and a tab
// escaped, values that start with f after a tab.
const rows = ['t\tsrc\t1\tfoo', 'f\tsrc\t2\t\\N', 'f\tsrc\t3\tline\\nf', 't\tsrc\t4\tfalse', 'f\tsrc\t5\tx\\tf', 't\tsrc\t6\t'];
const data = rows.map((r) => `${r}\n`).join('');

describe('FirstColumnFalse', () => {
  it('counts the false rows for every place one split can fall, and changes nothing', async () => {
    const bytes = Buffer.from(data);
    for (let at = 0; at <= bytes.length; at++) {
      const r = await through([bytes.subarray(0, at), bytes.subarray(at)]);
      expect(r, `split at ${at}`).toEqual({ out: data, count: 3 });
    }
  });

  it('counts the same when every byte comes alone', async () => {
    const bytes = Buffer.from(data);
    const r = await through([...bytes].map((b) => Buffer.from([b])));
    expect(r).toEqual({ out: data, count: 3 });
  });

  it('counts nothing in no rows, and one for a lone false row', async () => {
    expect(await through([])).toEqual({ out: '', count: 0 });
    expect(await through([Buffer.from('f\tx\n')])).toEqual({ out: 'f\tx\n', count: 1 });
    expect(await through([Buffer.from('t\tx\n')])).toEqual({ out: 't\tx\n', count: 0 });
  });
});

/**
 * The PostgreSQL receiver. It is `staged`: in a run, a chunk's rows reach it as COPY data in a
 * temporary table on its own server and are written set-based (apply/applier.ts, sync/chunk.ts),
 * never parsed in JavaScript, and whole copies go COPY to COPY (apply/fullcopy.ts). What the
 * interface adds for it is the generic side (begin, truncate, fences, one-time state, commit,
 * rollback), which the run uses where it treats every receiver alike, and writes of parsed
 * rows in one statement per batch (json_populate_recordset) for callers that have rows.
 */
import { jsonRow } from '../apply/staging.js';
import { hasDelivered, passFence, type Generation } from '../apply/fence.js';
import { emptyTable, isEmpty } from '../apply/fullcopy.js';
import { readTable, type TableInfo } from '../catalog/tables.js';
import type { Database } from '../db/database.js';
import { Session } from '../db/session.js';
import { ident, identList, qualified } from '../sql/ident.js';
import { APPLIED_BY_SETTING } from '../sql/names.js';
import type { Row } from '../types.js';
import { checkColumns, copyAsUpserts, tableMissing } from './common.js';
import type { Receiver, ReceiverCapabilities, ReceiverFactory, ReceiverTable, RowChanges, Written } from './receiver.js';

const CAPABILITIES: ReceiverCapabilities = { roles: ['source', 'target', 'fullcopy'], staged: true, validate: true };

/** Receivers over a pgferry database (its pool). */
export function postgresFactory(db: Database, schema: string): ReceiverFactory {
  return {
    kind: 'postgres',
    where: db.where,
    open: async (sync) => new PgReceiver(await Session.open(db), schema, sync),
    ping: async () => void (await db.query('SELECT 1')),
    close: async () => db.close(),
  };
}

export class PgReceiver implements Receiver {
  readonly kind = 'postgres' as const;
  readonly capabilities = CAPABILITIES;
  readonly session: Session;
  readonly #schema: string;
  readonly #sync: string;

  constructor(session: Session, schema: string, sync: string) {
    this.session = session;
    this.#schema = schema;
    this.#sync = sync;
  }

  get name(): string {
    return this.session.name;
  }

  async check(tables: readonly ReceiverTable[]): Promise<void> {
    for (const t of tables) {
      const info = await readTable(this.session.client, t);
      if (!info || info.kind !== 'table') throw tableMissing('postgres', this.name, t, `${t.schema}.${t.name}`);
      checkColumns('postgres', this.name, t, `${t.schema}.${t.name}`, new Set(info.columns.map((c) => c.name)), info.key);
    }
  }

  async begin(): Promise<void> {
    // Writes are tagged with the sync, so it never reads them back (no echo).
    await this.session.begin('read committed', { [APPLIED_BY_SETTING]: this.#sync });
  }

  async apply(t: ReceiverTable, changes: RowChanges): Promise<Written> {
    const out: Written = { upserted: 0, deleted: 0 };
    const table = qualified(t);
    const shape = { columns: t.columns } as unknown as TableInfo;
    const cols = t.columns.map((c) => c.name);
    const match = t.key.map((k) => `d.${ident(k)} = r.${ident(k)}`).join(' AND ');
    if (changes.deletes.length > 0) {
      const json = `[${changes.deletes.map((k) => jsonRow(k, t.key, shape)).join(',')}]`;
      const r = await this.session.query(`DELETE FROM ${table} d USING pg_catalog.json_populate_recordset(NULL::${table}, $1::json) r WHERE ${match}`, [json]);
      out.deleted += r.rowCount ?? 0;
    }
    if (changes.upserts.length > 0) {
      const keys = new Set(t.key);
      const rest = cols.filter((c) => !keys.has(c));
      const set = rest.length ? `DO UPDATE SET ${rest.map((c) => `${ident(c)} = EXCLUDED.${ident(c)}`).join(', ')}` : 'DO NOTHING';
      const json = `[${changes.upserts.map((r) => jsonRow(r, cols, shape)).join(',')}]`;
      await this.session.query(
        `INSERT INTO ${table} (${identList(cols)}) SELECT ${identList(cols, 'r')} FROM pg_catalog.json_populate_recordset(NULL::${table}, $1::json) r ON CONFLICT (${identList(t.key)}) ${set}`,
        [json],
      );
      out.upserted += changes.upserts.length;
    }
    return out;
  }

  async truncate(t: ReceiverTable): Promise<void> {
    await emptyTable(this.session, t);
  }

  fullCopy(t: ReceiverTable, batches: AsyncIterable<Row[]>, onBatch?: (rows: number) => void): Promise<number> {
    return copyAsUpserts(this, t, batches, onBatch);
  }

  isEmpty(t: ReceiverTable): Promise<boolean> {
    return isEmpty(this.session, t);
  }

  delivered(sync: string): Promise<boolean> {
    return hasDelivered(this.session, this.#schema, sync);
  }

  fence(sync: string, generation: Generation): Promise<void> {
    return passFence(this.session, this.#schema, sync, generation);
  }

  commit(): Promise<void> {
    return this.session.commit();
  }

  async rollback(): Promise<void> {
    await this.session.rollback().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}

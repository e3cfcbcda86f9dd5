/**
 * The applier. For each table and receiving database, once the current rows of the changed
 * keys are staged (staging.ts), it deletes the keys whose row no longer exists at the source
 * and upserts the rest, set-based. State, not statements, travels: applying the same batch
 * twice leaves the same rows.
 */
import { PgferryError } from '../errors.js';
import { canonicalKey, type ForeignKey, type TableInfo } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { displayName, ident, identList, keyJoin, literal, qualified } from '../sql/ident.js';
import { ORIGIN_SETTING, STAGING, type TempNames } from '../sql/names.js';
import type { RowKey } from '../types.js';

const PRESENT = STAGING.present;
const ORIGIN = STAGING.origin;
const SOURCE = STAGING.source;
/** A staged row's key number in its source's key table (merged rows: their position). */
const NUMBER = STAGING.number;

/**
 * Checks that `receiver` has each table with every column that travels and a unique key on
 * the same columns; throws TABLE_NOT_FOUND or SCHEMA_MISMATCH naming what differs. Returns
 * the receiver's tables as its catalog describes them (cached between runs: catalog/cache.ts),
 * or as `described` has them (by display name, read in the same transaction).
 */
export async function checkReceivers(
  receiver: Session,
  tables: readonly { info: TableInfo; columns: string[] }[],
  sourceDb: string,
  described?: ReadonlyMap<string, TableInfo | null>,
): Promise<TableInfo[]> {
  const known = described && tables.every((t) => described.has(displayName(t.info)));
  const infos = known ? tables.map((t) => described.get(displayName(t.info))!) : await receiver.db.catalog.read(receiver.client, tables.map((t) => t.info));
  return tables.map((t, i) => checkReceiver(receiver, infos[i]!, t.info, t.columns, sourceDb));
}

function checkReceiver(receiver: Session, t: TableInfo | null, source: TableInfo, columns: string[], sourceDb: string): TableInfo {
  const name = displayName(source);
  const db = receiver.name;
  if (!t || t.kind !== 'table') {
    throw new PgferryError('TABLE_NOT_FOUND', `Table ${name} does not exist on database "${db}". Create it there with the same columns as on "${sourceDb}".`, {
      database: db,
      table: name,
    });
  }
  for (const col of columns) {
    const c = t.columns.find((x) => x.name === col);
    if (!c) {
      throw new PgferryError(
        'SCHEMA_MISMATCH',
        `Table ${name} on database "${db}" has no column "${col}" (database "${sourceDb}" has it). Add the column on "${db}" and run again; pending changes are kept.`,
        { database: db, table: name, column: col },
      );
    }
    if (c.generated) {
      throw new PgferryError(
        'SCHEMA_MISMATCH',
        `Column "${col}" of ${name} is generated on database "${db}" but not on "${sourceDb}". Make the column the same on both.`,
        { database: db, table: name, column: col },
      );
    }
  }
  if (source.key.length > 0 && t.key.join('\0') !== source.key.join('\0')) {
    throw new PgferryError(
      'SCHEMA_MISMATCH',
      `Table ${name} on database "${db}" has key (${t.key.join(', ') || 'none'}) but "${sourceDb}" has (${source.key.join(', ')}). Give both the same primary key.`,
      { database: db, table: name, column: source.key[0] },
    );
  }
  return t;
}

/**
 * After a TRUNCATE on another source: empties the receiver's table, except (with `keepOwn`,
 * on a source) the rows of the keys it changed itself since, which are in its key table in
 * the same session.
 */
export async function emptyExceptOwn(receiver: Session, t: TableInfo, temp: TempNames, keepOwn: boolean): Promise<void> {
  const keep = keepOwn ? `WHERE NOT EXISTS (SELECT FROM pg_temp.${ident(temp.keys)} k WHERE ${keyJoin(t, 'd', 'k')})` : '';
  await receiver.query(`DELETE FROM ONLY ${qualified(t)} d ${keep}`);
}

export interface Applied {
  count: number;
  keys: RowKey[];
}

/** Staged rows of one source whose key numbers are in `from < n <= to`. */
export interface StagedSpan {
  source: string;
  from: number;
  to: number;
}

function spanFilter(span: StagedSpan | undefined): string {
  if (!span) return '';
  return ` AND s.${SOURCE} = ${literal(span.source)} AND s.${NUMBER} > ${Math.floor(span.from)} AND s.${NUMBER} <= ${Math.floor(span.to)}`;
}

/** The staged rows by source, as spans of key numbers (to apply part of them at a time). */
export async function stagedSpans(receiver: Session, temp: TempNames): Promise<StagedSpan[]> {
  const r = await receiver.query<{ source: string; from: string; to: string }>(
    `SELECT ${SOURCE} AS source, (min(${NUMBER}) - 1)::text AS from, max(${NUMBER})::text AS to FROM pg_temp.${ident(temp.staging)} GROUP BY 1`,
  );
  return r.rows.map((x) => ({ source: x.source, from: Number(x.from), to: Number(x.to) }));
}

async function origins(receiver: Session, temp: TempNames, present: boolean): Promise<(string | null)[]> {
  const r = await receiver.query<{ o: string | null }>(
    `SELECT DISTINCT ${ORIGIN} AS o FROM pg_temp.${ident(temp.staging)} WHERE ${PRESENT} = $1`,
    [present],
  );
  return r.rows.map((x) => x.o);
}

/**
 * A statement; statements without parameters, sent in one round trip; or one decided by the
 * row count of the statement before it (null: none).
 */
type Statement = string | string[] | ((previousRowCount: number) => string | null);

/**
 * Runs `statement` once per distinct origin of the staged rows, with the origin set for the
 * capture triggers on the receiver (so a cascading sync knows where the change came from).
 * `known` gives the origins when the caller knows them (saves a query).
 */
async function perOrigin(
  receiver: Session,
  temp: TempNames,
  present: boolean,
  statements: (originFilter: string, o: string | null) => Statement[],
  wantKeys: boolean,
  known?: string[],
): Promise<Applied> {
  const out: Applied = { count: 0, keys: [] };
  const list = known ?? (await origins(receiver, temp, present));
  for (const o of list) {
    await receiver.setLocal(ORIGIN_SETTING, o ?? '');
    const filter = list.length === 1 ? 'true' : o === null ? `s.${ORIGIN} IS NULL` : `s.${ORIGIN} = $1`;
    const values = list.length === 1 || o === null ? [] : [o];
    let previous = -1;
    for (const st of statements(filter, o)) {
      const text = typeof st === 'function' ? st(previous) : st;
      if (text === null) continue;
      const r = await receiver.query(typeof text === 'string' ? text : text.join(';\n'), values);
      // Several statements in one string: a result each.
      for (const x of Array.isArray(r) ? (r as typeof r[]) : [r]) {
        previous = x.rowCount ?? 0;
        out.count += previous;
        if (wantKeys) out.keys.push(...(x.rows as RowKey[]));
      }
    }
  }
  return out;
}

/** A table that references another through a foreign key (on the receiver). */
export interface ReferencingTable {
  table: TableInfo;
  fk: ForeignKey;
}

/** `AND NOT EXISTS (...)` for each referencing table: no row of it references row `d`. */
function unreferenced(children: ReferencingTable[], parent: TableInfo): string {
  return children
    .map(({ table, fk }) => {
      const match = fk.columns.map((c, i) => {
        const ref = fk.refColumns[i]!;
        const k = parent.key.indexOf(ref);
        return `c.${ident(c)} ${k >= 0 ? parent.keyOps[k] : 'OPERATOR(pg_catalog.=)'} d.${ident(ref)}`;
      });
      return ` AND NOT EXISTS (SELECT FROM ${qualified(table)} c WHERE ${match.join(' AND ')})`;
    })
    .join('');
}

/**
 * Deletes the staged keys whose rows no longer exist at the source: those of `span` only, when
 * given; with `children`, only rows that no row of those tables references.
 */
export async function applyDeletes(
  receiver: Session,
  t: TableInfo,
  temp: TempNames,
  wantKeys: boolean,
  knownOrigins?: string[],
  span?: StagedSpan,
  children?: ReferencingTable[],
): Promise<Applied> {
  const st = ident(temp.staging);
  const only = children ? unreferenced(children, t) : '';
  return perOrigin(
    receiver,
    temp,
    false,
    (filter) => [
      `DELETE FROM ${qualified(t)} d USING pg_temp.${st} s WHERE NOT s.${PRESENT} AND ${filter}${spanFilter(span)} AND ${keyJoin(t, 'd', 's')}${only}
       ${wantKeys ? `RETURNING ${identList(t.key, 'd')}` : ''}`,
    ],
    wantKeys,
    knownOrigins,
  );
}

/** Up to this many staged rows of an origin, applyUpserts sends its UPDATE and INSERT in one round trip. */
const ONE_TRIP_ROWS = 100;

/** The origins of a table's staged rows and how many of them exist at the source, per origin (from stagedCounts). */
export interface KnownUpserts {
  origins: string[];
  present: ReadonlyMap<string, number>;
}

/** Inserts or updates the staged rows that exist at the source (those of `span` only, when given). */
export async function applyUpserts(
  receiver: Session,
  t: TableInfo,
  temp: TempNames,
  columns: string[],
  wantKeys: boolean,
  known?: KnownUpserts,
  span?: StagedSpan,
): Promise<Applied> {
  const st = ident(temp.staging);
  const keys = new Set(t.key);
  // Identity columns GENERATED ALWAYS can be inserted (OVERRIDING SYSTEM VALUE) but not updated.
  const settable = columns.filter(
    (c) => !keys.has(c) && t.columns.find((x) => x.name === c)?.identity !== 'a',
  );
  const onConflict = settable.length
    ? `DO UPDATE SET ${settable.map((c) => `${ident(c)} = EXCLUDED.${ident(c)}`).join(', ')}`
    : 'DO NOTHING';
  const match = keyJoin(t, 'd', 's');
  const returning = wantKeys ? `RETURNING ${identList(t.key, 'd')}` : '';
  // Rows that exist are updated in one joined UPDATE (set-based, a quarter faster than ON
  // CONFLICT row by row); the rest are inserted, with ON CONFLICT for a row that appears
  // meanwhile. When the UPDATE found a row for every staged one (one row per key and origin),
  // nothing is missing and the INSERT pass is left out. (Always the UPDATE first: an INSERT
  // ... ON CONFLICT for rows that exist would fire a receiver's INSERT triggers and defaults
  // for them, and revive on a source a row an application deleted after the run's snapshot.)
  const always = columns.filter((c) => !keys.has(c) && t.columns.find((x) => x.name === c)?.identity === 'a');
  const insert = (filter: string) => `INSERT INTO ${qualified(t)} AS d (${identList(columns)}) OVERRIDING SYSTEM VALUE
         SELECT ${identList(columns, 's')} FROM pg_temp.${st} s
          WHERE s.${PRESENT} AND ${filter}${spanFilter(span)} AND NOT EXISTS (SELECT 1 FROM ${qualified(t)} d WHERE ${match})
         ON CONFLICT (${identList(t.key)}) ${onConflict} ${returning}`;
  const upsert = (filter: string, o: string | null): Statement[] => {
    if (settable.length === 0) return [insert(filter)];
    const update = `UPDATE ${qualified(t)} AS d SET ${settable.map((c) => `${ident(c)} = s.${ident(c)}`).join(', ')}
            FROM pg_temp.${st} s WHERE s.${PRESENT} AND ${filter}${spanFilter(span)} AND ${match} ${returning}`;
    const present = o === null ? undefined : known?.present.get(o);
    // A few rows of the one origin (no parameter): the INSERT goes with the UPDATE, in the
    // same round trip, whether or not a row is missing (it finds the updated rows and leaves
    // them; a receiver's statement-level INSERT triggers fire then even when none is).
    if (!span && filter === 'true' && present !== undefined && present <= ONE_TRIP_ROWS) return [[update, insert(filter)]];
    return [update, (updated: number) => (!span && present === updated ? null : insert(filter))];
  };
  const out = await perOrigin(
    receiver,
    temp,
    true,
    (filter, o) => [
      ...upsert(filter, o),
      // Keys equal for the table but written differently ('Foo' and 'foo' in citext, 1.0 and
      // 1.00): the row takes the source's spelling, so every database holds the same text.
      ...(canonicalKey(t)
        ? []
        : [`UPDATE ${qualified(t)} AS d SET ${t.key.map((c) => `${ident(c)} = s.${ident(c)}`).join(', ')}
              FROM pg_temp.${st} s WHERE s.${PRESENT} AND ${filter}${spanFilter(span)} AND ${match}
               AND (${t.key.map((c) => `(d.${ident(c)}::text COLLATE "C") IS DISTINCT FROM (s.${ident(c)}::text COLLATE "C")`).join(' OR ')})`]),
    ],
    wantKeys,
    known?.origins,
  );
  if (always.length > 0) await alignAlwaysIdentity(receiver, t, temp, always, span);
  return out;
}

/**
 * Identity columns GENERATED ALWAYS (not the key) whose staged value differs from an existing
 * row's (the row was deleted and inserted again at the source): PostgreSQL updates such a
 * column only while it is GENERATED BY DEFAULT, so it is switched for the update and back, in
 * the same transaction (which locks the table until it commits). Needs the table's owner.
 */
async function alignAlwaysIdentity(receiver: Session, t: TableInfo, temp: TempNames, always: string[], span: StagedSpan | undefined): Promise<void> {
  const staged = `pg_temp.${ident(temp.staging)} s`;
  const differs = always.map((c) => `d.${ident(c)} IS DISTINCT FROM s.${ident(c)}`).join(' OR ');
  const where = `s.${PRESENT}${spanFilter(span)} AND ${keyJoin(t, 'd', 's')} AND (${differs})`;
  const r = await receiver.query(`SELECT 1 FROM ${qualified(t)} d, ${staged} WHERE ${where} LIMIT 1`);
  if (!r.rowCount) return;
  const alter = (how: string) => `ALTER TABLE ${qualified(t)} ${always.map((c) => `ALTER COLUMN ${ident(c)} SET GENERATED ${how}`).join(', ')}`;
  try {
    await receiver.query(alter('BY DEFAULT'));
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err;
    throw new PgferryError(
      'SCHEMA_MISMATCH',
      `Column ${always.map((c) => `"${c}"`).join(', ')} of ${displayName(t)} on database "${receiver.name}" is GENERATED ALWAYS AS IDENTITY and a replicated row changes it; PostgreSQL allows that only to the table's owner. Replicate as the owner, or make the column GENERATED BY DEFAULT there.`,
      { database: receiver.name, table: displayName(t), column: always[0], cause: err },
    );
  }
  await receiver.query(`UPDATE ${qualified(t)} AS d SET ${always.map((c) => `${ident(c)} = s.${ident(c)}`).join(', ')} FROM ${staged} WHERE ${where}`);
  await receiver.query(alter('ALWAYS'));
}

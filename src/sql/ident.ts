/**
 * The one way names and constant text reach SQL: `ident()` quotes a name, `qualified()` joins
 * schema and name, `literal()` quotes a constant that the library itself chooses. Values from
 * rows never go through here; they travel as `$n` parameters or COPY data.
 *
 * This module imports nothing of pgferry's: every other part may use it.
 */

/** A schema-qualified name, each part exactly as stored in the catalog. */
export interface QualifiedName {
  schema: string;
  name: string;
}

/** Quotes an identifier for SQL (always quoted, so case and any character survive). */
export function ident(name: string): string {
  // Names are validated when configured; a NUL here is a bug, not bad input.
  if (name.includes('\0')) throw new TypeError(`identifier contains a NUL byte: ${JSON.stringify(name)}`);
  return '"' + name.replace(/"/g, '""') + '"';
}

export function qualified(q: QualifiedName): string {
  return `${ident(q.schema)}.${ident(q.name)}`;
}

/**
 * A SQL string literal, for text the library chooses (setting names, notify channels, a
 * database's name). Correct with `standard_conforming_strings = on`, which every pgferry
 * session pins.
 */
export function literal(s: string): string {
  if (s.includes('\0')) throw new TypeError(`literal contains a NUL byte: ${JSON.stringify(s)}`);
  return `'${s.replace(/'/g, "''")}'`;
}

/** A string constant that reads the same whatever standard_conforming_strings is (E'...'). */
export function escapeLiteral(s: string): string {
  if (s.includes('\0')) throw new TypeError(`literal contains a NUL byte: ${JSON.stringify(s)}`);
  return `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** How results and events name a table: `schema.table`, unquoted. */
export function displayName(q: QualifiedName): string {
  return `${q.schema}.${q.name}`;
}

/** Comma-separated quoted identifiers, optionally prefixed with a table alias. */
export function identList(names: readonly string[], alias?: string): string {
  const p = alias ? `${alias}.` : '';
  return names.map((n) => p + ident(n)).join(', ');
}

/**
 * `l.k1 OPERATOR(s.=) r.k1 AND ...`: rows of two aliases with the same key, compared with the
 * key index's own equality operators (`ops`, one per key column), whatever the search_path.
 */
/** What a key comparison needs: the key columns, their equality operators, and the types to cast to. */
export interface KeyShape {
  key: readonly string[];
  keyOps: readonly string[];
  /** Per key column, a qualified type to cast both sides to before comparing ('' for none). */
  keyCasts?: readonly string[];
}

/**
 * `left.k1 = right.k1 AND ...` with each key column's own equality operator. Where the
 * operator lives outside pg_catalog, both sides are cast to its declared type first: the
 * operator is then the exact match, and an overload for a narrower type (a domain) created in
 * that schema by someone else cannot be chosen instead.
 */
export function keyJoin(shape: KeyShape, left: string, right: string): string {
  return shape.key
    .map((c, i) => {
      const cast = shape.keyCasts?.[i] ? `::${shape.keyCasts[i]}` : '';
      return `${left}.${ident(c)}${cast} ${shape.keyOps[i] ?? 'OPERATOR(pg_catalog.=)'} ${right}.${ident(c)}${cast}`;
    })
    .join(' AND ');
}

/** A short stable hash (FNV-1a, 32 bit) in hex, for names derived from user names. */
export function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

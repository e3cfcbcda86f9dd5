/**
 * The one way names reach SQL: `ident()` quotes, `qualified()` joins. Values never go
 * through here; they travel as `$n` parameters or COPY data.
 */
import { PgferryError } from '../errors.js';

/** A schema-qualified name, each part exactly as stored in the catalog. */
export interface QualifiedName {
  schema: string;
  name: string;
}

/** Quotes an identifier for SQL (always quoted, so case and any character survive). */
export function ident(name: string): string {
  if (name.includes('\0')) throw new PgferryError('CONFIG_INVALID', `identifier contains a NUL byte: ${JSON.stringify(name)}`);
  return '"' + name.replace(/"/g, '""') + '"';
}

export function qualified(q: QualifiedName): string {
  return `${ident(q.schema)}.${ident(q.name)}`;
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
 * Parses a table name written like SQL: `orders` (schema public), `sales.orders`,
 * `"Odd Schema"."Tbl ""Q"""`. Unquoted parts fold to lower case; quoted parts are kept.
 */
export function parseQualifiedName(text: string, defaultSchema = 'public'): QualifiedName {
  const parts: string[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new PgferryError('CONFIG_INVALID', `Invalid table name ${JSON.stringify(text)}: ${why}`, {
      issues: [{ path: 'tables', message: `${JSON.stringify(text)}: ${why}` }],
    });
  };
  while (i < text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) fail('unterminated double quote');
        if (text[i] === '"') {
          if (text[i + 1] === '"') { part += '"'; i += 2; continue; }
          i++;
          break;
        }
        part += text[i++];
      }
      if (part === '') fail('empty quoted name');
    } else {
      const start = i;
      while (i < text.length && text[i] !== '.' && text[i] !== '"') i++;
      part = text.slice(start, i).trim().toLowerCase();
      if (part === '') fail('empty name part');
      if (/\s/.test(part)) fail('unquoted names cannot contain spaces (use double quotes)');
    }
    parts.push(part);
    if (i < text.length) {
      if (text[i] !== '.') fail(`unexpected ${JSON.stringify(text[i])}`);
      i++;
      if (i >= text.length) fail('trailing dot');
    }
  }
  if (parts.length === 1) return { schema: defaultSchema, name: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, name: parts[1]! };
  return fail('expected "table" or "schema.table"');
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

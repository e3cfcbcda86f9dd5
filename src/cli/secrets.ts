/**
 * Passwords never reach the terminal. Every password found in the configuration (password
 * fields, connection strings in URL or key=value form, options of a caller's pool) is collected
 * as soon as the file is read, and every line the command writes is redacted with them, on
 * top of the redaction the library does in its own errors.
 */
import { isPlainObject } from './env.js';

/** Every password in a configuration (read before it is checked, so error paths are covered too). */
export function secretsOf(config: unknown): string[] {
  const found = new Set<string>();
  collect(config, found, 0);
  return [...found].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

function collect(value: unknown, found: Set<string>, depth: number): void {
  if (depth > 20) return;
  if (typeof value === 'string') {
    for (const s of passwordsInConnectionString(value)) found.add(s);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, found, depth + 1);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  // A caller's pg.Pool keeps its configuration in `options`.
  const entries = isPlainObject(value) ? Object.entries(value) : Object.entries((value as { options?: object }).options ?? {});
  for (const [k, v] of entries) {
    if (k === 'password' && typeof v === 'string') found.add(v);
    else collect(v, found, depth + 1);
  }
}

function passwordsInConnectionString(text: string): string[] {
  const out: string[] = [];
  const url = /^[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:([^@\s]*)@/i.exec(text);
  if (url?.[1]) {
    out.push(url[1]);
    try {
      out.push(decodeURIComponent(url[1]));
    } catch {
      /* not percent-encoded */
    }
  }
  for (const m of text.matchAll(/password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)/gi)) out.push(m[1]!.replace(/^'|'$/g, ''));
  return out;
}

/** Replaces every secret, and any `scheme://user:password@` left, by `***`. */
export function redactText(text: string, secrets: readonly string[]): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@');
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}

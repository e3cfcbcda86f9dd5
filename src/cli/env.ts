/**
 * `${NAME}` in the strings of a configuration, replaced from the environment. Only plain
 * objects, arrays and strings are walked (functions, pools and stores stay as they are);
 * `$${NAME}` stands for a literal `${NAME}`. An unset variable is CONFIG_INVALID naming the
 * variable and the field.
 */
import { PgferryError, type ConfigIssue } from '../index.js';

const REFERENCE = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** A copy of `value` with every `${NAME}` replaced; throws CONFIG_INVALID listing every unset variable. */
export function substituteEnv<T>(value: T, env: NodeJS.ProcessEnv = process.env): T {
  const issues: ConfigIssue[] = [];
  const out = walk(value, [], env, issues);
  if (issues.length > 0) {
    const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    throw new PgferryError('CONFIG_INVALID', `Invalid pgferry config: ${list}. Set the variable, or write $\${NAME} for a literal \${NAME}.`, { issues });
  }
  return out as T;
}

function walk(value: unknown, path: string[], env: NodeJS.ProcessEnv, issues: ConfigIssue[]): unknown {
  if (typeof value === 'string') {
    return value.replace(REFERENCE, (whole, literal: string, name: string) => {
      if (literal) return whole.slice(1);
      const v = env[name];
      if (v === undefined) {
        issues.push({ path: path.join('.') || '(root)', message: `environment variable ${name} is not set` });
        return whole;
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, String(i)], env, issues));
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, [...path, k], env, issues)]));
  }
  return value;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

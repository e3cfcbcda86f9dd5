/** Stable error codes. Callers branch on `err.code`; messages may improve between releases. */
export type PgferryErrorCode =
  | 'CONFIG_INVALID'
  | 'UNKNOWN_DATABASE'
  | 'UNKNOWN_SYNC'
  | 'TABLE_NOT_FOUND'
  | 'NO_PRIMARY_KEY'
  | 'SCHEMA_MISMATCH'
  | 'CONFLICT'
  | 'CONSTRAINT_VIOLATION'
  | 'KICK_TIMEOUT'
  | 'WAIT_TIMEOUT'
  | 'NOT_INSTALLED'
  | 'CONNECTION_FAILED'
  | 'STOPPED'
  | 'SCHEMA_TOO_NEW'
  | 'NOT_SUPPORTED'
  | 'RUN_FAILED';

export interface ConfigIssue {
  /** Dotted path of the bad field, e.g. `databases.c` or `conflictStrategy`. */
  path: string;
  message: string;
}

export interface PgferryErrorDetails {
  sync?: string;
  database?: string;
  table?: string;
  column?: string;
  constraint?: string;
  issues?: ConfigIssue[];
  /** Whether retrying the same run later may succeed (connection loss, serialization failure). */
  transient?: boolean;
  cause?: unknown;
}

/**
 * The one error class of pgferry. `code` is stable; `sync`, `database`, `table`, `column`
 * and `constraint` say where it happened when known.
 */
export class PgferryError extends Error {
  override readonly name = 'PgferryError';
  readonly code: PgferryErrorCode;
  readonly sync?: string;
  readonly database?: string;
  readonly table?: string;
  readonly column?: string;
  readonly constraint?: string;
  readonly issues?: ConfigIssue[];
  readonly transient: boolean;

  constructor(code: PgferryErrorCode, message: string, details: PgferryErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.transient = details.transient ?? false;
    for (const k of ['sync', 'database', 'table', 'column', 'constraint', 'issues'] as const) {
      if (details[k] !== undefined) Object.defineProperty(this, k, { value: details[k], enumerable: true });
    }
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.sync && { sync: this.sync }),
      ...(this.database && { database: this.database }),
      ...(this.table && { table: this.table }),
      ...(this.column && { column: this.column }),
      ...(this.constraint && { constraint: this.constraint }),
      ...(this.issues && { issues: this.issues }),
    };
  }
}

/** True for errors thrown by any copy of pgferry (instanceof fails across ESM/CJS copies). */
export function isPgferryError(err: unknown): err is PgferryError {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as { name?: unknown }).name === 'PgferryError' &&
    typeof (err as { code?: unknown }).code === 'string'
  );
}

/** SQLSTATEs that a later attempt can get past. */
const TRANSIENT_SQLSTATE = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '08000', '08003', '08006', '08001', '08004', // connection exceptions
]);

const CONNECTION_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH']);

export function isTransientDbError(err: unknown): boolean {
  if (isPgferryError(err)) return err.transient;
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && (TRANSIENT_SQLSTATE.has(e.code) || CONNECTION_ERRNO.has(e.code))) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection ended|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(msg);
}

export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && (CONNECTION_ERRNO.has(e.code) || e.code.startsWith('08') || e.code === '57P01' || e.code === '57P03')) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection ended|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(msg);
}

/** Removes anything that looks like a password from a message. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@');
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

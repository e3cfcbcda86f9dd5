/**
 * What the command writes: results on stdout, errors, logs and progress on stderr, every line
 * redacted with the configuration's passwords. An error is one line `pgferry: CODE: message`;
 * the exit code says what kind of failure it was.
 */
import { isPgferryError } from '../index.js';
import { redactText } from './secrets.js';

/** Bad arguments: exit 2, like a bad configuration. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

export const EXIT = { ok: 0, failed: 1, usage: 2, timeout: 3 } as const;

const USAGE_CODES = new Set(['USAGE', 'CONFIG_INVALID', 'UNKNOWN_SYNC', 'UNKNOWN_DATABASE']);
const TIMEOUT_CODES = new Set(['KICK_TIMEOUT', 'WAIT_TIMEOUT']);

/** The code an error is shown with: a pgferry code, USAGE, or ERROR for anything else. */
export function codeOf(err: unknown): string {
  if (isPgferryError(err) || err instanceof UsageError) return err.code;
  return 'ERROR';
}

/** 2 for bad configuration or usage, 3 for a timeout, else 1. */
export function exitCodeOf(err: unknown): number {
  const code = codeOf(err);
  if (USAGE_CODES.has(code)) return EXIT.usage;
  if (TIMEOUT_CODES.has(code)) return EXIT.timeout;
  return EXIT.failed;
}

export class Output {
  #secrets: string[] = [];
  #through: ((line: string) => void) | null = null;
  readonly #stdout: NodeJS.WriteStream;
  readonly #stderr: NodeJS.WriteStream;

  constructor(stdout: NodeJS.WriteStream = process.stdout, stderr: NodeJS.WriteStream = process.stderr) {
    this.#stdout = stdout;
    this.#stderr = stderr;
  }

  /** Passwords to keep out of everything written from now on. */
  addSecrets(secrets: readonly string[]): void {
    // Also as they look inside a JSON string (a quote or backslash in a password is escaped there).
    const forms = secrets.flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]);
    this.#secrets = [...new Set([...this.#secrets, ...forms])].filter(Boolean).sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    return redactText(text, this.#secrets);
  }

  /** A result on stdout. */
  out(text: string): void {
    this.#stdout.write(this.redact(text));
  }

  /** A log line on stderr. */
  log(line: string): void {
    if (this.#through) this.#through(this.redact(line));
    else this.#stderr.write(this.redact(line) + '\n');
  }

  /** Sends log lines through `write` (progress bars print them above themselves), or not (`null`). */
  logThrough(write: ((line: string) => void) | null): void {
    this.#through = write;
  }

  /** The one JSON document of `--json`. */
  json(value: unknown): void {
    this.out(JSON.stringify(value, null, 2) + '\n');
  }

  /** `pgferry: CODE: message` on stderr, on one line. */
  error(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.log(`pgferry: ${codeOf(err)}: ${message.replace(/\s*\n\s*/g, ' ')}`);
  }

  /** Whether stderr is a terminal (progress bars) or not (plain lines). */
  get interactive(): boolean {
    return this.#stderr.isTTY === true;
  }

  get stderr(): NodeJS.WriteStream {
    return this.#stderr;
  }
}

/** An error as `--json` shows it. */
export function errorJson(err: unknown): Record<string, unknown> {
  if (isPgferryError(err)) return err.toJSON();
  return { code: codeOf(err), message: err instanceof Error ? err.message : String(err) };
}

/**
 * The databases a Replicator was given, by name: PostgreSQL databases (db/database.ts) and,
 * as receivers only, databases of other kinds (receivers/). Each name is used once.
 */
import { checkName, databaseConfigSchema, foreignDatabaseSchema, isForeignConfig, parseConfig, type AnyDatabaseConfig } from './config.js';
import { Database } from './db/database.js';
import { PgferryError } from './errors.js';
import { openFactory } from './receivers/open.js';
import type { ReceiverFactory } from './receivers/receiver.js';

export class Databases {
  readonly postgres = new Map<string, Database>();
  /** Databases that are not PostgreSQL (targets and fullcopy receivers only). */
  readonly others = new Map<string, ReceiverFactory>();
  readonly #schema: string;
  readonly #connectionTimeoutMs: number;

  constructor(schema: string, connectionTimeoutMs: number) {
    this.#schema = schema;
    this.#connectionTimeoutMs = connectionTimeoutMs;
  }

  /** Checks and adds a database; another kind's driver is loaded now. */
  async add(name: string, config: AnyDatabaseConfig): Promise<void> {
    checkName('database', name);
    const other = isForeignConfig(config);
    const parsed = other ? parseConfig(foreignDatabaseSchema, config, `database "${name}"`, name) : parseConfig(databaseConfigSchema, config, `database "${name}"`, name);
    this.#refuseAdded(name);
    if (!other) {
      this.postgres.set(name, new Database(name, parsed as ConstructorParameters<typeof Database>[1], this.#connectionTimeoutMs));
      return;
    }
    const factory = await openFactory(name, parsed as Parameters<typeof openFactory>[1], this.#schema);
    // The same name may have been added while the driver loaded.
    try {
      this.#refuseAdded(name);
    } catch (err) {
      await factory.close();
      throw err;
    }
    this.others.set(name, factory);
  }

  #refuseAdded(name: string): void {
    if (!this.postgres.has(name) && !this.others.has(name)) return;
    throw new PgferryError('CONFIG_INVALID', `Database "${name}" was already added; each database name is used once.`, {
      database: name,
      issues: [{ path: name, message: 'already added' }],
    });
  }

  names(): string[] {
    return [...this.postgres.keys(), ...this.others.keys()];
  }

  /** The kind of each database that is not PostgreSQL. */
  otherKinds(): Map<string, string> {
    return new Map([...this.others].map(([name, f]) => [name, f.kind]));
  }

  /**
   * Checks that the databases of other kinds among `names` answer. They need nothing installed
   * (their fences are made on first write).
   */
  async pingOthers(names: Iterable<string>): Promise<void> {
    for (const name of new Set(names)) await this.others.get(name)?.ping();
  }

  /** Closes every pool (and other kinds' connections); never throws. */
  async close(): Promise<void> {
    await Promise.all([...this.postgres.values(), ...this.others.values()].map((d) => d.close().catch(() => undefined)));
  }
}

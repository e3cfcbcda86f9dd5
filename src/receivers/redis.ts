/**
 * Redis receivers (ioredis, an optional peer dependency). A row of `schema.table` is the hash
 * `schema.table:KEY` (KEY: the key columns' PostgreSQL text, escaped and joined by `:`, see
 * redisKey), its fields the other columns in PostgreSQL text form, a NULL column an absent
 * field; the set `schema.table:keys` lists the KEYs, so TRUNCATE deletes every hash of the
 * table. A chunk is one MULTI/EXEC on a connection of the run's own: commands are sent as they
 * come (pipelined, queued by the server) and take effect together at EXEC. The fence of a sync is the string
 * `<schema>:fence:<sync>`, WATCHed from the start of the chunk, so a run that lost its lock
 * while a newer one wrote cannot commit.
 */
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import type { Generation } from '../apply/fence.js';
import { PgferryError } from '../errors.js';
import type { Row, RowKey } from '../types.js';
import { copyAsUpserts, defaultOf, loadDriver, mayPass, redactUri, staleRun, writeError } from './common.js';
import type { Receiver, ReceiverCapabilities, ReceiverFactory, ReceiverTable, RowChanges, Written } from './receiver.js';
import { keyText, toRedis } from './values.js';

type Driver = new (url: string, options: RedisOptions) => RedisClient;

const CAPABILITIES: ReceiverCapabilities = { roles: ['target', 'fullcopy'], staged: false, validate: false };

/** Deletes every hash a table's `:keys` set lists, and the set. */
const TRUNCATE_SCRIPT = `local m = redis.call('SMEMBERS', KEYS[1])
for i = 1, #m do redis.call('DEL', ARGV[1] .. m[i]) end
redis.call('DEL', KEYS[1])
return #m`;

/** Where a table's rows live: `prefix + KEY` hashes and the `keys` set. */
export function redisNames(t: Pick<ReceiverTable, 'schema' | 'name'>): { prefix: string; keys: string } {
  const prefix = `${t.schema}.${t.name}:`;
  return { prefix, keys: `${prefix}keys` };
}

/**
 * The KEY of a row: its key columns' text, each with `\` written `\\` and `:` written `\:`,
 * joined by `:` (so ('x:y', 'z') and ('x', 'y:z') stay two rows); a KEY that would be `keys`
 * is `\keys`, so no row's hash is the table's `:keys` set. Texts without `:` or `\` are
 * unchanged.
 */
export function redisKey(t: Pick<ReceiverTable, 'key'>, row: RowKey): string {
  const key = t.key.map((k) => keyText(row[k]).replace(/[\\:]/g, '\\$&')).join(':');
  return key === 'keys' ? '\\keys' : key;
}

export async function redisFactory(database: string, url: string, schema: string): Promise<ReceiverFactory> {
  const Redis = await loadDriver('redis', database, async () => defaultOf<Driver>(await import('ioredis')));
  const { where, secrets } = redactUri(url);
  const fail = (err: unknown) => writeError('redis', database, undefined, err, secrets, { connection: true });
  const connect = async (): Promise<RedisClient> => {
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => null });
    c.on('error', () => undefined); // failures reach the command that meets them
    try {
      await c.connect();
    } catch (err) {
      c.disconnect();
      throw fail(err);
    }
    return c;
  };
  return {
    kind: 'redis',
    where,
    open: async (sync) => {
      const tx = await connect();
      let reader: RedisClient;
      try {
        reader = await connect();
      } catch (err) {
        tx.disconnect();
        throw err;
      }
      return new RedisReceiver(database, sync, tx, reader, schema, secrets);
    },
    ping: async () => {
      const c = await connect();
      try {
        await c.ping();
      } catch (err) {
        throw fail(err);
      } finally {
        c.disconnect();
      }
    },
    close: async () => undefined,
  };
}

class RedisReceiver implements Receiver {
  readonly kind = 'redis' as const;
  readonly capabilities = CAPABILITIES;
  readonly name: string;
  /** The chunk's MULTI. */
  readonly #tx: RedisClient;
  /** Reads outside it (which gone keys exist, emptiness, fences). */
  readonly #reader: RedisClient;
  readonly #schema: string;
  readonly #secrets: string[];
  readonly #sync: string;
  #inMulti = false;
  /** The sync's fence as it was when the chunk began (WATCHed since). */
  #fence: string | null = null;
  #fenced: Generation | null = null;
  /** The fences the open MULTI sets, with what they held before (null: none). */
  #fencesBefore = new Map<string, string | null>();
  /** Rows sent while emptied tables are filled need no existence check. */
  #copying = false;

  constructor(name: string, sync: string, tx: RedisClient, reader: RedisClient, schema: string, secrets: string[]) {
    this.name = name;
    this.#sync = sync;
    this.#tx = tx;
    this.#reader = reader;
    this.#schema = schema;
    this.#secrets = secrets;
  }

  #error(t: ReceiverTable | undefined, err: unknown): PgferryError {
    const msg = String((err as Error)?.message ?? '');
    return writeError('redis', this.name, t, err, this.#secrets, { connection: /Connection is closed|ECONNREFUSED|ECONNRESET|Stream isn't writeable/.test(msg) });
  }

  #fenceKey(sync: string): string {
    return `${this.#schema}:fence:${sync}`;
  }

  async check(): Promise<void> {
    // Hashes need no table: nothing to check.
  }

  async begin(): Promise<void> {
    try {
      // The fence is read and WATCHed before MULTI (WATCH is refused inside it): EXEC then fails
      // when another run wrote the fence meanwhile.
      this.#fencesBefore.clear();
      await this.#tx.watch(this.#fenceKey(this.#sync));
      this.#fence = await this.#tx.get(this.#fenceKey(this.#sync));
      await this.#tx.multi({ pipeline: false });
    } catch (err) {
      await this.#tx.unwatch().catch(() => undefined);
      throw this.#error(undefined, err);
    }
    this.#inMulti = true;
  }

  async apply(t: ReceiverTable, changes: RowChanges): Promise<Written> {
    const { prefix, keys } = redisNames(t);
    const out: Written = { upserted: 0, deleted: 0 };
    const keySet = new Set(t.key);
    const fields = t.columns.filter((c) => !keySet.has(c.name));
    const pending: Promise<unknown>[] = [];
    try {
      if (changes.deletes.length > 0) {
        const gone = changes.deletes.map((k) => redisKey(t, k));
        const exists = this.#copying ? [] : ((await this.#reader.smismember(keys, ...gone)) as number[]);
        out.deleted += exists.filter((x) => x === 1).length;
        pending.push(this.#tx.del(...gone.map((k) => prefix + k)), this.#tx.srem(keys, ...gone));
      }
      if (changes.upserts.length > 0) {
        const members: string[] = [];
        for (const row of changes.upserts) {
          const k = redisKey(t, row);
          members.push(k);
          const values: string[] = [];
          for (const c of fields) {
            const v = toRedis(row[c.name]);
            if (v !== null) values.push(c.name, v);
          }
          if (!this.#copying) pending.push(this.#tx.del(prefix + k));
          if (values.length > 0) pending.push(this.#tx.hset(prefix + k, ...values));
        }
        pending.push(this.#tx.sadd(keys, ...members));
        out.upserted += changes.upserts.length;
      }
      await Promise.all(pending);
    } catch (err) {
      throw this.#error(t, err);
    }
    return out;
  }

  async truncate(t: ReceiverTable): Promise<void> {
    const { prefix, keys } = redisNames(t);
    try {
      await this.#tx.eval(TRUNCATE_SCRIPT, 1, keys, prefix);
    } catch (err) {
      throw this.#error(t, err);
    }
  }

  async fullCopy(t: ReceiverTable, batches: AsyncIterable<Row[]>, onBatch?: (rows: number) => void): Promise<number> {
    this.#copying = true;
    try {
      return await copyAsUpserts(this, t, batches, onBatch);
    } finally {
      this.#copying = false;
    }
  }

  async isEmpty(t: ReceiverTable): Promise<boolean> {
    try {
      return (await this.#reader.scard(redisNames(t).keys)) === 0;
    } catch (err) {
      throw this.#error(t, err);
    }
  }

  async delivered(sync: string): Promise<boolean> {
    try {
      return (await this.#reader.exists(this.#fenceKey(sync))) === 1;
    } catch (err) {
      throw this.#error(undefined, err);
    }
  }

  async fence(sync: string, generation: Generation): Promise<void> {
    const text = sync === this.#sync ? this.#fence : await this.#reader.get(this.#fenceKey(sync)).catch((err: unknown) => Promise.reject(this.#error(undefined, err)));
    const recorded = text ? { generation: text.slice(0, text.indexOf(' ')), origin: text.slice(text.indexOf(' ') + 1) } : undefined;
    if (!mayPass(recorded, generation)) throw staleRun(sync, this.name, generation);
    if (!this.#fencesBefore.has(sync)) this.#fencesBefore.set(sync, text);
    try {
      await this.#tx.set(this.#fenceKey(sync), `${generation.value} ${generation.origin}`);
    } catch (err) {
      throw this.#error(undefined, err);
    }
    this.#fenced = generation;
  }

  async commit(): Promise<void> {
    let r: [Error | null, unknown][] | null;
    try {
      r = await this.#tx.exec();
    } catch (err) {
      this.#inMulti = false;
      throw this.#error(undefined, err);
    }
    this.#inMulti = false;
    if (r === null) throw staleRun(this.#sync, this.name, this.#fenced ?? { value: 0n, origin: '' });
    // EXEC ran every queued command: all but the failed one took effect.
    const failed = r.find(([e]) => e !== null)?.[0];
    if (failed) {
      // The fences were set too: put back what they held, so that a first copy that failed is not taken as done (the run still holds its lock).
      for (const [sync, before] of this.#fencesBefore) {
        const key = this.#fenceKey(sync);
        await (before === null ? this.#reader.del(key) : this.#reader.set(key, before)).catch(() => undefined);
      }
      throw writeError('redis', this.name, undefined, failed, this.#secrets, { partial: true });
    }
  }

  async rollback(): Promise<void> {
    if (!this.#inMulti) return;
    this.#inMulti = false;
    await this.#tx.discard().catch(() => undefined);
    await this.#tx.unwatch().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.rollback();
    this.#tx.disconnect();
    this.#reader.disconnect();
  }
}

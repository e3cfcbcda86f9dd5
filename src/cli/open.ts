/**
 * The Replicator a command works with, built from the configuration through the public API:
 * the store, every database and every sync. Nothing connects until a command needs it.
 */
import {
  MemoryControlStore,
  PostgresControlStore,
  Replicator,
  type ControlStore,
  type PgferryConfig,
  type PostgresControlStoreOptions,
  type StoreConfig,
} from '../index.js';
import { namedStore } from './store.js';

export async function openReplicator(config: PgferryConfig): Promise<Replicator> {
  const store = namedStore(storeOf(config.store, config.databases));
  const rep = new Replicator({ store, ...(config.schema !== undefined && { schema: config.schema }) });
  for (const [name, connection] of Object.entries(config.databases)) await rep.addDatabase(name, connection);
  for (const [name, sync] of Object.entries(config.syncs)) await rep.addSync(name, sync);
  return rep;
}

/**
 * `{ kind: 'memory' }` (the default: history lasts as long as the command), `{ kind:
 * 'postgres', database }` (history in that database of `databases`, over its connection),
 * `{ kind: 'postgres', connection }` (a database of its own), or a ControlStore object.
 */
export function storeOf(store: StoreConfig | undefined, databases: PgferryConfig['databases']): ControlStore {
  if (store === undefined || ('kind' in store && store.kind === 'memory')) return new MemoryControlStore();
  if (!('kind' in store) || store.kind !== 'postgres') return store as ControlStore;
  const connection = store.database !== undefined ? databases[store.database] : store.connection;
  return new PostgresControlStore({
    connection: connection as PostgresControlStoreOptions['connection'],
    ...(store.schema !== undefined && { schema: store.schema }),
    ...(store.keepRuns !== undefined && { keepRuns: store.keepRuns }),
    ...(store.keepConflicts !== undefined && { keepConflicts: store.keepConflicts }),
  });
}

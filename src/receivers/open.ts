/** A receiver factory for a database of another kind, its driver loaded only now. */
import type { ResolvedForeignDatabaseConfig } from '../config.js';
import { mysqlFactory } from './mysql.js';
import type { ReceiverFactory } from './receiver.js';
import { redisFactory } from './redis.js';
import { sqliteFactory } from './sqlite.js';

export async function openFactory(name: string, config: ResolvedForeignDatabaseConfig, schema: string): Promise<ReceiverFactory> {
  switch (config.type) {
    case 'sqlite':
      return sqliteFactory(name, config.filename, schema);
    case 'mysql':
      return mysqlFactory(name, config.uri, schema);
    case 'redis':
      return redisFactory(name, config.url, schema);
  }
}

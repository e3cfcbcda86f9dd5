// A configuration for the `pgferry` command: `pgferry --config examples/pgferry.config.mjs status`.
// ${NAME} in any string is replaced from the environment (the command fails with
// CONFIG_INVALID naming the variable and the field when one is not set).
import { defineConfig } from 'pgferry';

export default defineConfig({
  databases: {
    old: 'postgres://app:${PGFERRY_PASSWORD}@old-db.example:5432/shop',
    new: { host: 'new-db.example', port: 5432, database: 'shop', user: 'app', password: '${PGFERRY_PASSWORD}' },
  },
  syncs: {
    shop: {
      tables: ['customers', 'orders', 'orders_id_seq'],
      databases: { old: 'source', new: 'target' },
      onetimecopy: 'ifEmpty', // the first run fills the new database's empty tables
    },
  },
  // Run history in the source database, so `pgferry status` shows the last run of any instance.
  store: { kind: 'postgres', database: 'old' },
});

/** MySQL/MariaDB as a target and a fullcopy receiver (issue 15); the tests are in helpers/target-suite.ts. */
import { targetSuite } from './helpers/target-suite.js';

targetSuite('mysql', {
  code: 'CONSTRAINT_VIOLATION',
  // A CHECK constraint refuses the row whose v is 'boom' (the 140th of the chunk).
  arm: async (b) => {
    await b.exec(`ALTER TABLE t ADD CONSTRAINT no_boom CHECK (v IS NULL OR v <> 'boom')`);
  },
  disarm: async (b) => {
    await b.exec('ALTER TABLE t DROP CONSTRAINT no_boom');
  },
});

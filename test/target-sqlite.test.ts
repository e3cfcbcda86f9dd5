/** SQLite as a target and a fullcopy receiver (issue 15); the tests are in helpers/target-suite.ts. */
import { targetSuite } from './helpers/target-suite.js';

targetSuite('sqlite', {
  code: 'CONSTRAINT_VIOLATION',
  // A trigger refuses the row whose v is 'boom' (the 140th of the chunk).
  arm: async (b) => {
    await b.exec(`CREATE TRIGGER boom BEFORE INSERT ON t WHEN NEW.v = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END`);
  },
  disarm: async (b) => {
    await b.exec('DROP TRIGGER boom');
  },
});

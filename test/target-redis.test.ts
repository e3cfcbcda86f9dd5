/** Redis as a target and a fullcopy receiver (issue 15); the tests are in helpers/target-suite.ts. */
import { targetSuite } from './helpers/target-suite.js';

targetSuite('redis', {
  code: 'RUN_FAILED',
  // A user whose ACL lets it write the hashes of ids 1..99 only: the server refuses the 90th
  // command of the chunk when it is queued, and the whole MULTI is discarded.
  arm: async (b) => {
    await b.exec(['ACL', 'SETUSER', 'limited', 'on', '>limited-secret', 'resetkeys', '~public.t:keys', '~public.t:?', '~public.t:??', '~pgferry:*', '+@all']);
    const url = new URL((b.config as { url: string }).url);
    url.username = 'limited';
    url.password = 'limited-secret';
    return { type: 'redis', url: url.toString() };
  },
  disarm: async (b) => {
    await b.exec(['ACL', 'SETUSER', 'limited', 'allkeys']);
  },
});

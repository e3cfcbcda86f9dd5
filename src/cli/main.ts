#!/usr/bin/env node
/** The `pgferry` executable: runs the command line and exits with its code. */
import { EXIT } from './output.js';
import { runCli } from './program.js';

// A reader that went away (`pgferry print-sql | head`) ends the command quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
    throw err;
  });
}

const code = await runCli(process.argv);
process.exitCode = code;
// After a timeout the run still holds connections: end now (the servers roll it back).
if (code === EXIT.timeout) process.exit(code);
// Everything pgferry opened is closed by now; should anything else hold the process, it still ends.
setTimeout(() => process.exit(code), 2_000).unref();

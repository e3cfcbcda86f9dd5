/**
 * `pgferry start`: the replicator in the foreground until SIGINT or SIGTERM, which stop it
 * gracefully (runs in flight finish, connections close) and end the command with exit 0. A
 * second signal during that stop ends the process at once. Runs and errors are logged to stderr.
 */
import createDebug from 'debug';
import type { Replicator } from '../index.js';
import { runLines } from './format.js';
import { EXIT, type Output } from './output.js';
import { showProgress } from './progress.js';

const debug = createDebug('pgferry:cli');

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export async function start(rep: Replicator, output: Output): Promise<number> {
  rep.on('sync:complete', (r) => {
    if (r.status === 'ok') output.log(runLines(r)[0]!);
  });
  rep.on('sync:error', (e) => {
    output.error(e.error);
    if (e.willRetry) output.log(`pgferry: ${e.sync}: retrying${e.retryInMs !== undefined ? ` in ${e.retryInMs} ms` : ''}`);
  });
  // Already logged as sync:error; listening keeps it from becoming a process warning.
  rep.on('error', (err) => debug('background run needs attention: %s', err.code));
  const stopProgress = showProgress(rep, output);
  const signalled = waitForSignal(output);
  try {
    await rep.start();
    const syncs = rep.status().syncs.map((s) => s.name);
    output.log(`pgferry: started as ${rep.name} (syncs: ${syncs.join(', ') || 'none'}); SIGINT or SIGTERM stops`);
    const signal = await signalled.promise;
    output.log(`pgferry: ${signal}: stopping (runs in flight finish first)`);
  } finally {
    // The handlers stay during the stop, so that a second signal can cut it short.
    await rep.stop().finally(() => signalled.dispose());
    stopProgress();
  }
  output.log('pgferry: stopped');
  return EXIT.ok;
}

/** The first SIGINT/SIGTERM resolves the promise; a second one exits at once. */
function waitForSignal(output: Output): { promise: Promise<string>; dispose(): void } {
  let got: string | null = null;
  let resolve!: (s: string) => void;
  const promise = new Promise<string>((r) => (resolve = r));
  const onSignal = (signal: string) => {
    if (got !== null) {
      output.log(`pgferry: ${signal} again: exiting without waiting for the stop`);
      process.exit(130);
    }
    got = signal;
    resolve(signal);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  // The replicator keeps no timer alive (its own are unref'd) and may have no connection (a
  // database down): this one keeps the process waiting for the signal.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  return {
    promise,
    dispose: () => {
      clearInterval(keepAlive);
      for (const s of SIGNALS) process.off(s, onSignal);
    },
  };
}

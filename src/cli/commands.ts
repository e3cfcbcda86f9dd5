/**
 * The commands that do one thing and end: install, uninstall, print-sql, kick, status and
 * validate. Each returns its exit code; errors it does not handle itself reach main's handler.
 */
import { PgferryError, type Replicator, type RunResult } from '../index.js';
import { runLines, statusLines, validationLines, type SyncReport } from './format.js';
import { EXIT, errorJson, exitCodeOf, type Output } from './output.js';
import { showProgress } from './progress.js';

export interface Context {
  rep: Replicator;
  output: Output;
}

/** The sync named, or every sync of the configuration. */
function syncNames(rep: Replicator, sync: string | undefined): string[] {
  return sync !== undefined ? [sync] : rep.status().syncs.map((s) => s.name);
}

export async function install({ rep, output }: Context, sync?: string): Promise<number> {
  const names = syncNames(rep, sync);
  await rep.install(sync);
  for (const name of names) output.out(`installed ${name}\n`);
  return EXIT.ok;
}

export async function uninstall({ rep, output }: Context, sync?: string): Promise<number> {
  await rep.uninstall(sync);
  output.out(sync !== undefined ? `uninstalled ${sync}\n` : `uninstalled everything pgferry installed in ${rep.status().databases.join(', ')}\n`);
  return EXIT.ok;
}

export async function printSql({ rep, output }: Context, sync?: string): Promise<number> {
  for (const name of syncNames(rep, sync)) {
    const sql = await rep.installSql(name);
    output.out(`-- What pgferry install runs for sync "${name}" on its sources\n${sql}\n`);
  }
  return EXIT.ok;
}

export interface KickFlags {
  timeoutMs?: number;
  json?: boolean;
}

/**
 * Kicks the sync (or every sync, each to its end) and reports each result. With --json: the
 * run result for one sync, an array for all; a failed sync is `{ sync, error }` there.
 */
export async function kick({ rep, output }: Context, sync: string | undefined, flags: KickFlags): Promise<number> {
  const names = syncNames(rep, sync);
  const stopProgress = showProgress(rep, output);
  const settled = await Promise.allSettled(names.map((name) => kickOne(rep, name, flags.timeoutMs))).finally(stopProgress);
  const reports = settled.map((s, i) => (s.status === 'fulfilled' ? s.value : { sync: names[i]!, error: s.reason as unknown }));
  const failures: unknown[] = [];
  for (const r of reports) {
    if ('error' in r) {
      failures.push(r.error);
      output.error(r.error);
    } else if (!flags.json) {
      output.out(runLines(r).join('\n') + '\n');
    }
  }
  if (flags.json) {
    const docs = reports.map((r) => ('error' in r ? { sync: r.sync, error: errorJson(r.error) } : r));
    output.json(sync !== undefined ? ('error' in docs[0]! ? { error: docs[0].error } : docs[0]) : docs);
  }
  if (failures.length === 0) return EXIT.ok;
  const codes = failures.map(exitCodeOf);
  return codes.includes(EXIT.failed) ? EXIT.failed : Math.max(...codes);
}

async function kickOne(rep: Replicator, name: string, timeoutMs: number | undefined): Promise<RunResult> {
  try {
    return await rep.kick(name, timeoutMs !== undefined ? { timeoutMs } : {});
  } catch (err) {
    if (err instanceof PgferryError && err.code === 'KICK_TIMEOUT') {
      // The command ends here, and the run with it: the process exits, and the servers roll
      // back what the run had not committed.
      throw new PgferryError('KICK_TIMEOUT', `Kick of sync "${name}" did not finish within ${timeoutMs} ms; the run was stopped with the command, which keeps nothing it had not committed.`, { sync: name });
    }
    throw err;
  }
}

/** Per sync: roles, autokick, backlog and lag read from the sources, and the last run the store kept. */
export async function status({ rep, output }: Context, flags: { json?: boolean }): Promise<number> {
  await rep.store.init?.();
  const metrics = await rep.metrics();
  const syncs: Record<string, SyncReport> = {};
  for (const s of rep.status().syncs) {
    const m = metrics.syncs[s.name];
    const [lastRun] = await rep.store.runs(s.name, 1);
    syncs[s.name] = { databases: s.databases, autokick: s.autokick, backlog: m?.backlog ?? {}, errors: m?.errors ?? {}, lagMs: m?.lagMs ?? 0, lastRun: lastRun ?? null };
  }
  if (flags.json) output.json({ syncs });
  else output.out(statusLines(syncs).join('\n') + '\n');
  // A source that could not be read is something to look at: exit 1, as a failed sync does.
  return Object.values(syncs).some((s) => Object.keys(s.errors).length > 0) ? EXIT.failed : EXIT.ok;
}

/** Compares (with --repair: repairs) the sync's tables; exit 1 when differences were found. */
export async function validate({ rep, output }: Context, sync: string, flags: { repair?: boolean; json?: boolean }): Promise<number> {
  const stopProgress = showProgress(rep, output);
  const v = await rep.validate(sync, { repair: flags.repair === true }).finally(stopProgress);
  if (flags.json) output.json(v);
  else output.out(validationLines(v).join('\n') + '\n');
  return v.equal ? EXIT.ok : EXIT.failed;
}

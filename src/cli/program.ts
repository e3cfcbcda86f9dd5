/**
 * The `pgferry` command line: arguments (commander), the configuration, one Replicator, the
 * command, and the exit code. Every error ends as one line `pgferry: CODE: message` on stderr
 * (and, with --json, as `{ "error": ... }`, the one document on stdout).
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import createDebug from 'debug';
import type { Replicator } from '../index.js';
import * as commands from './commands.js';
import { loadConfig } from './load.js';
import { openReplicator } from './open.js';
import { EXIT, Output, UsageError, errorJson, exitCodeOf } from './output.js';
import { start } from './start.js';

const debug = createDebug('pgferry:cli');

const HELP_AFTER = `
Configuration: --config FILE, else pgferry.config.mjs, pgferry.config.js or pgferry.config.json
in the current directory; a module's default export is the configuration
(export default defineConfig({ databases, syncs, store, schema })). \${NAME} in a string is
replaced by the environment variable NAME.

Exit codes: 0 ok; 1 a sync failed, or validate found differences; 2 bad configuration or
usage; 3 a timeout. Errors are one line on stderr: pgferry: CODE: message.
`;

type Body = (ctx: commands.Context) => Promise<number>;

/** Loads the configuration, opens the replicator, runs `body`, and always closes what it opened. */
async function runWith(output: Output, configFile: string | undefined, json: boolean, body: Body): Promise<number> {
  let rep: Replicator | undefined;
  let code: number = EXIT.failed;
  try {
    const config = await loadConfig(configFile, output);
    rep = await openReplicator(config);
    code = await body({ rep, output });
  } catch (err) {
    output.error(err);
    if (json) output.json({ error: errorJson(err) });
    code = exitCodeOf(err);
  }
  // A run that timed out is not waited for: the process ends now, its connections close, and
  // the servers roll back what it had not committed. Otherwise close what was opened.
  if (rep && code !== EXIT.timeout) await closeReplicator(rep, output);
  return code;
}

/** Longest wait for the replicator to close after a command (nothing should be in flight). */
const CLOSE_BOUND_MS = 10_000;

async function closeReplicator(rep: Replicator, output: Output): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(() => resolve(debug('stop did not end within %d ms', CLOSE_BOUND_MS)), CLOSE_BOUND_MS)));
  await Promise.race([rep.stop({ timeoutMs: 0 }).catch((err: Error) => debug('stop failed: %s', output.redact(err.message))), bound]);
  clearTimeout(timer);
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('It must be a positive whole number of milliseconds.');
  return n;
}

/** The program; each action stores its exit code through `done`. */
export function buildProgram(output: Output, done: (code: number) => void): Command {
  const program = new Command('pgferry')
    .description('Trigger-based replication for PostgreSQL: install capture, run syncs, check that databases agree.')
    .option('-c, --config <file>', 'configuration file (default: pgferry.config.{mjs,js,json} in the current directory)')
    .addHelpText('after', HELP_AFTER)
    .exitOverride()
    .configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.stderr.write(output.redact(s)), outputError: () => undefined });
  const config = () => program.opts<{ config?: string }>().config;
  const act = (json: boolean, body: Body) => runWith(output, config(), json, body).then(done);

  program.command('install [sync]').description('create the capture schema and triggers on the sources of the sync (or of every sync); idempotent')
    .action((sync?: string) => act(false, (ctx) => commands.install(ctx, sync)));
  program.command('uninstall [sync]').description("remove the sync's capture (or, with no sync, everything pgferry installed)")
    .action((sync?: string) => act(false, (ctx) => commands.uninstall(ctx, sync)));
  program.command('print-sql [sync]').description('print the DDL that install runs, for review; changes nothing')
    .action((sync?: string) => act(false, (ctx) => commands.printSql(ctx, sync)));
  program.command('kick [sync]').description('run the sync (or every sync) now and report the result')
    .option('--timeout <ms>', 'give up after this many ms (exit 3); the run is stopped', positiveInt)
    .option('--json', 'print the run result as JSON')
    .action((sync: string | undefined, o: { timeout?: number; json?: boolean }) =>
      act(o.json === true, (ctx) => commands.kick(ctx, sync, { ...(o.timeout !== undefined && { timeoutMs: o.timeout }), json: o.json === true })));
  program.command('start').description('replicate in the foreground (autokick, checks, retries) until SIGINT or SIGTERM')
    .action(() => act(false, (ctx) => start(ctx.rep, ctx.output)));
  program.command('status').description("each sync's databases, backlog and lag on its sources, and its last recorded run")
    .option('--json', 'print the status as JSON')
    .action((o: { json?: boolean }) => act(o.json === true, (ctx) => commands.status(ctx, o)));
  program.command('validate <sync>').description("compare the sync's tables across its databases (exit 1 when they differ)")
    .option('--repair', 'make every database equal to the sources, and report what was changed')
    .option('--json', 'print the report as JSON')
    .action((sync: string, o: { repair?: boolean; json?: boolean }) => act(o.json === true, (ctx) => commands.validate(ctx, sync, o)));
  return program;
}

/** Runs the command line `argv` (as process.argv) and resolves with the exit code. */
export async function runCli(argv: string[], output = new Output()): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(output, (c) => (code = c));
  if (argv.length <= 2) {
    program.outputHelp({ error: true });
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      // `help CMD` is a request (exit code 0); help shown for a missing command is an error.
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      output.error(new UsageError(`${err.message.replace(/^error: /, '')} (see pgferry --help)`));
      return EXIT.usage;
    }
    output.error(err);
    return exitCodeOf(err);
  }
}

/**
 * The `pgferry` command, run in child processes against real servers: every command's output
 * and exit code, --json documents, bad configuration (exit 2), a timed-out kick (exit 3, made
 * certain by holding the sync's run lock), and `start` stopped by a signal (exit 0) after it
 * replicated. Passwords are checked in cli-secrets.test.ts. Each command is a child process of
 * its own (about a second each), so the tests get a larger time budget.
 */
import { describe, expect, it } from 'vitest';
import { lockArgs, lockValues, runLock } from '../src/db/locks.js';
import { cli, shown, spawnCli, tempDir, writeConfig, INDEX_URL } from './fixtures/cli.js';
import { connect, count, createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { waitFor } from './helpers/wait.js';

const DDL = 'CREATE TABLE t (id int PRIMARY KEY, v text)';

/** Sync `s` of table t from a (source) to b (target), autokick off unless `sync` says otherwise. */
function configOf(a: TestDb, b: TestDb, sync: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    databases: { a: a.url, b: b.url },
    syncs: { s: { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false, ...sync } },
    ...extra,
  };
}

/** Databases that are never reached (nothing listens on port 1). */
const NOWHERE = { a: 'postgres://app@127.0.0.1:1/a', b: 'postgres://app@127.0.0.1:1/b' };

/** Fresh databases a and b with table t, a config file for them in a fresh directory, installed. */
async function installed(sync: Record<string, unknown> = {}): Promise<{ a: TestDb; b: TestDb; dir: string }> {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], DDL);
  const dir = tempDir();
  writeConfig(dir, configOf(a!, b!, sync));
  const r = await cli(['install'], { cwd: dir });
  expect(r, shown(r)).toMatchObject({ code: 0, stdout: 'installed s\n', stderr: '' });
  return { a: a!, b: b!, dir };
}

/** The one JSON document on stdout. */
function json(stdout: string): any {
  return JSON.parse(stdout);
}

const runKeys = ['chunks', 'durationMs', 'reason', 'runId', 'startedAt', 'status', 'sync', 'tables', 'totals'];

describe('pgferry: help and usage', () => {
  it('--help lists every command; per-command help; bad usage exits 2 with one line', { timeout: 180_000 }, async () => {
    const help = await cli(['--help']);
    expect(help.code, shown(help)).toBe(0);
    expect(help.stderr).toBe('');
    for (const c of ['install [sync]', 'uninstall [sync]', 'print-sql [sync]', 'kick [options] [sync]', 'start', 'status [options]', 'validate [options] <sync>']) {
      expect(help.stdout).toContain(c);
    }
    expect(help.stdout).toContain('Exit codes: 0 ok; 1 a sync failed');

    const kickHelp = await cli(['kick', '--help']);
    expect(kickHelp.code).toBe(0);
    expect(kickHelp.stdout).toContain('--timeout <ms>');
    expect(kickHelp.stdout).toContain('--json');
    const validateHelp = await cli(['help', 'validate']);
    expect(validateHelp.code).toBe(0);
    expect(validateHelp.stdout).toContain('--repair');

    expect(await cli(['bogus'])).toMatchObject({ code: 2, stdout: '', stderr: "pgferry: USAGE: unknown command 'bogus' (see pgferry --help)\n" });
    expect(await cli(['kick', '--timeout', 'soon'])).toMatchObject({
      code: 2,
      stdout: '',
      stderr: "pgferry: USAGE: option '--timeout <ms>' argument 'soon' is invalid. It must be a positive whole number of milliseconds. (see pgferry --help)\n",
    });
    expect(await cli(['validate'])).toMatchObject({ code: 2, stderr: "pgferry: USAGE: missing required argument 'sync' (see pgferry --help)\n" });
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('Usage: pgferry');
  });
});

describe('pgferry: configuration', () => {
  it('no config file: exit 2 naming the files looked for', { timeout: 180_000 }, async () => {
    const dir = tempDir();
    const r = await cli(['status'], { cwd: dir });
    expect(r).toMatchObject({
      code: 2,
      stdout: '',
      stderr: `pgferry: CONFIG_INVALID: No config file: none of pgferry.config.mjs, pgferry.config.js, pgferry.config.json in ${dir}. Create one, or pass --config FILE.\n`,
    });
  });

  it('a bad field, a sync naming an unknown database, an unset ${VAR}: exit 2 naming the field path', { timeout: 180_000 }, async () => {
    const dir = tempDir();
    writeConfig(dir, { databases: NOWHERE, syncs: { s: { tables: ['t'], databases: { a: 'source', b: 'target' }, onetimecopy: 'sometimes' } } });
    expect(await cli(['kick', 's'], { cwd: dir })).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'pgferry: CONFIG_INVALID: Invalid pgferry config: syncs.s.onetimecopy: Invalid option: expected one of "never"|"always"|"ifEmpty"\n',
    });

    const other = writeConfig(dir, { databases: NOWHERE, syncs: { s: { tables: ['t'], databases: { a: 'source', c: 'target' } } } }, 'other.json');
    expect(await cli(['--config', other, 'install'], { cwd: dir })).toMatchObject({
      code: 2,
      stderr: 'pgferry: CONFIG_INVALID: Invalid pgferry config: syncs.s.databases.c: not a database of databases\n',
    });

    const env = writeConfig(dir, { databases: { a: 'postgres://app:${PGFERRY_CLI_UNSET_PW}@127.0.0.1:1/a', b: NOWHERE.b }, syncs: {} }, 'env.json');
    const unset = await cli(['status', '--config', 'env.json', '--json'], { cwd: dir });
    expect(unset.code).toBe(2);
    const message = 'Invalid pgferry config: databases.a: environment variable PGFERRY_CLI_UNSET_PW is not set. Set the variable, or write $${NAME} for a literal ${NAME}.';
    expect(unset.stderr).toBe(`pgferry: CONFIG_INVALID: ${message}\n`);
    // --json: the error is the one document on stdout.
    expect(json(unset.stdout)).toEqual({
      error: { name: 'PgferryError', code: 'CONFIG_INVALID', message, issues: [{ path: 'databases.a', message: 'environment variable PGFERRY_CLI_UNSET_PW is not set' }] },
    });
    expect(env).toContain(dir);
  });

  it('a config module: defineConfig() in it names the bad field; a module with no default export; bad JSON', { timeout: 180_000 }, async () => {
    const dir = tempDir();
    writeConfig(dir, `import { defineConfig } from '${INDEX_URL}';
export default defineConfig({ databases: { a: 'postgres://app@127.0.0.1:1/a', b: { host: '127.0.0.1', port: 'x' } }, syncs: {} });
`, 'pgferry.config.mjs');
    expect(await cli(['status'], { cwd: dir })).toMatchObject({
      code: 2,
      stderr: 'pgferry: CONFIG_INVALID: Invalid pgferry config: databases.b.port: Invalid input: expected number, received string\n',
    });
    writeConfig(dir, 'export const config = {};\n', 'none.mjs');
    expect(await cli(['status', '-c', 'none.mjs'], { cwd: dir })).toMatchObject({
      code: 2,
      stderr: `pgferry: CONFIG_INVALID: Config file ${dir}/none.mjs has no default export: write export default defineConfig({ databases, syncs }).\n`,
    });
    writeConfig(dir, '{ "databases": ', 'broken.json');
    const broken = await cli(['status', '-c', 'broken.json'], { cwd: dir });
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(new RegExp(`^pgferry: CONFIG_INVALID: Config file ${dir}/broken.json is not valid JSON: .+\\.\\n$`));
  });
});

describe('pgferry: commands on a one-way sync', () => {
  it('print-sql, install, status, kick, validate (equal, then a difference), uninstall; ${VAR} from the environment; runs kept in a postgres store', { timeout: 180_000 }, async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const dir = tempDir();
    writeConfig(dir, {
      databases: { a: '${PGFERRY_CLI_A}', b: '${PGFERRY_CLI_B}' },
      syncs: { s: { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false } },
      store: { kind: 'postgres', database: 'a' },
    });
    const run = (...args: string[]) => cli(args, { cwd: dir, env: { PGFERRY_CLI_A: a!.url, PGFERRY_CLI_B: b!.url } });

    const sql = await run('print-sql', 's');
    expect(sql.code, shown(sql)).toBe(0);
    expect(sql.stdout).toMatch(/^-- What pgferry install runs for sync "s" on its sources\n/);
    expect(sql.stdout).toContain('CREATE TRIGGER');
    expect(await a!.sql(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'`)).toHaveLength(0);

    expect(await run('install')).toMatchObject({ code: 0, stdout: 'installed s\n', stderr: '' });
    expect(await a!.sql(`SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.t'::regclass`)).not.toHaveLength(0);

    await a!.sql(`INSERT INTO t VALUES (1, 'one'), (2, 'two')`);
    const before = await run('status', '--json');
    expect(before.code, shown(before)).toBe(0);
    const st = json(before.stdout);
    expect(st).toEqual({ syncs: { s: { databases: { a: 'source', b: 'target' }, autokick: false, backlog: { a: 2 }, errors: {}, lagMs: st.syncs.s.lagMs, lastRun: null } } });
    expect(typeof st.syncs.s.lagMs).toBe('number');

    const kicked = await run('kick', 's', '--json');
    expect(kicked.code, shown(kicked)).toBe(0);
    const result = json(kicked.stdout);
    expect(Object.keys(result).sort()).toEqual(runKeys);
    expect(result).toMatchObject({ sync: 's', status: 'ok', reason: 'kick', chunks: 1, tables: { 'public.t': { upserted: 2, deleted: 0, conflicts: 0 } }, totals: { upserted: 2, deleted: 0, conflicts: 0 } });
    expect(new Date(result.startedAt).toISOString()).toBe(result.startedAt);
    expect(await count(b!)).toBe(2);

    const empty = await run('kick');
    expect(empty.code, shown(empty)).toBe(0);
    expect(empty.stdout).toMatch(/^s: nothing to send \(\d+ ms\)\n$/);

    const after = json((await run('status', '--json')).stdout).syncs.s;
    expect(after).toMatchObject({ backlog: { a: 0 }, lagMs: 0, lastRun: { sync: 's', status: 'empty', reason: 'kick', rows: 0 } });
    const text = await run('status');
    expect(text.stdout).toMatch(/^s: a \(source\), b \(target\); autokick off\n  backlog: a 0; lag 0 ms\n  last run: \S+ \(kick, \d+ ms\) empty, 0 rows by \S+\n$/);

    const equal = await run('validate', 's', '--json');
    expect(equal.code, shown(equal)).toBe(0);
    expect(json(equal.stdout)).toEqual({ sync: 's', equal: true, tables: { 'public.t': { rows: { a: 2, b: 2 }, equal: true, differences: [], truncated: false } } });

    await b!.sql(`UPDATE t SET v = 'changed on b' WHERE id = 2`);
    await b!.sql(`DELETE FROM t WHERE id = 1`);
    const differ = await run('validate', 's', '--json');
    expect(differ.code, shown(differ)).toBe(1);
    expect(json(differ.stdout)).toEqual({
      sync: 's',
      equal: false,
      tables: {
        'public.t': {
          rows: { a: 2, b: 1 },
          equal: false,
          differences: [{ key: { id: 1 }, missingOn: ['b'], differsOn: [] }, { key: { id: 2 }, missingOn: [], differsOn: ['b'] }],
          truncated: false,
        },
      },
    });
    expect(await run('validate', 's')).toMatchObject({
      code: 1,
      stdout: 's: differences found\n  public.t: 2 differences (rows: a 2, b 1)\n    {"id":1}: missing on b\n    {"id":2}: differs on b\n',
      // validate:progress, as plain lines when stderr is not a terminal
      stderr: 'validate s public.t: 2 rows, done\n',
    });

    // --repair: still exit 1 (differences were found), the report says what it wrote; then equal.
    const repaired = await run('validate', 's', '--repair', '--json');
    expect(repaired.code, shown(repaired)).toBe(1);
    const report = json(repaired.stdout);
    expect(report.repaired).toBe(true);
    expect(report.tables['public.t'].repaired).toEqual({ b: { upserted: 2, deleted: 0, pending: 0, pendingKeys: [] } });
    expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
    expect((await run('validate', 's')).code).toBe(0);

    expect(await run('uninstall', 's')).toMatchObject({ code: 0, stdout: 'uninstalled s\n' });
    expect(await a!.sql(`SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.t'::regclass AND NOT tgisinternal`)).toHaveLength(0);
  });

  it('a failed run exits 1 with one line; --json shows the error; an unknown sync exits 2', { timeout: 180_000 }, async () => {
    const { a, b, dir } = await installed();
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);
    await b.sql('ALTER TABLE t RENAME TO t_gone');

    const failed = await cli(['kick', 's'], { cwd: dir });
    expect(failed.code, shown(failed)).toBe(1);
    expect(failed.stdout).toBe('');
    expect(failed.stderr).toMatch(/^pgferry: TABLE_NOT_FOUND: [^\n]*public\.t[^\n]*"b"[^\n]*\n$/);

    const asJson = await cli(['kick', 's', '--json'], { cwd: dir });
    expect(asJson.code).toBe(1);
    expect(json(asJson.stdout)).toEqual({ error: { name: 'PgferryError', code: 'TABLE_NOT_FOUND', message: expect.any(String), sync: 's', database: 'b', table: 'public.t' } });
    expect(asJson.stderr).toBe(`pgferry: TABLE_NOT_FOUND: ${json(asJson.stdout).error.message}\n`);

    const unknown = await cli(['validate', 'nope', '--json'], { cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('pgferry: UNKNOWN_SYNC: There is no sync "nope". Known syncs: s.\n');
    expect(json(unknown.stdout)).toEqual({ error: { name: 'PgferryError', code: 'UNKNOWN_SYNC', message: 'There is no sync "nope". Known syncs: s.', sync: 'nope' } });
  });

  it('kick --timeout 1 while another session holds the run lock: exit 3, and the run is stopped', { timeout: 180_000 }, async () => {
    const { a, b, dir } = await installed();
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);

    const holder = await connect(a);
    await holder.query(`SELECT pg_catalog.pg_advisory_lock(${lockArgs(1)})`, lockValues(runLock('pgferry', 's')));
    const started = Date.now();
    const r = await cli(['kick', 's', '--timeout', '1', '--json'], { cwd: dir });
    expect(r.code, shown(r)).toBe(3);
    const message = 'Kick of sync "s" did not finish within 1 ms; the run was stopped with the command, which keeps nothing it had not committed.';
    expect(r.stderr).toBe(`pgferry: KICK_TIMEOUT: ${message}\n`);
    expect(json(r.stdout)).toEqual({ error: { name: 'PgferryError', code: 'KICK_TIMEOUT', message, sync: 's' } });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await count(b)).toBe(0);
    // The run's sessions ended with the command.
    await waitFor('no pgferry session on a', async () => (await a.sql(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgferry'`)).length === 0);

    await holder.query(`SELECT pg_catalog.pg_advisory_unlock_all()`);
    const again = await cli(['kick', 's', '--timeout', '20000'], { cwd: dir });
    expect(again.code, shown(again)).toBe(0);
    expect(again.stdout).toMatch(/^s: ok in \d+ ms, 1 upserted, 0 deleted, 0 conflicts\n  public\.t: 1 upserted, 0 deleted, 0 conflicts\n$/);
    expect(await count(b)).toBe(1);
  });

  it('a first copy reports its progress as plain lines on stderr when it is not a terminal', { timeout: 180_000 }, async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g`);
    const dir = tempDir();
    writeConfig(dir, configOf(a!, b!, { onetimecopy: 'always' }));
    expect((await cli(['install'], { cwd: dir })).code).toBe(0);
    const r = await cli(['kick', 's', '--json'], { cwd: dir });
    expect(r.code, shown(r)).toBe(0);
    expect(r.stderr.split('\n')).toContain('copy s public.t → b: 50 rows, done');
    expect(json(r.stdout).totals.upserted).toBe(50);
    expect(await count(b!)).toBe(50);
  });
});

describe('pgferry start', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`replicates by autokick while it runs; ${signal} stops it gracefully with exit 0`, { timeout: 180_000 }, async () => {
      const { a, b, dir } = await installed({ autokick: true });

      const p = spawnCli(['start'], { cwd: dir });
      await waitFor('pgferry start to say it started', () => p.output().stderr.includes('pgferry: started as '), { timeoutMs: 20_000 });
      await a.sql(`INSERT INTO t VALUES (1, 'while it runs')`);
      await waitFor('the row on b', async () => (await count(b)) === 1, { timeoutMs: 10_000 });
      await waitFor('the run logged', () => /\ns: ok in \d+ ms, 1 upserted/.test(p.output().stderr), { timeoutMs: 5_000 });

      p.child.kill(signal);
      const r = await p.done;
      expect(r, shown(r)).toMatchObject({ code: 0, signal: null, stdout: '' });
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^pgferry: started as \S+ \(syncs: s\); SIGINT or SIGTERM stops$/);
      expect(lines.slice(-2)).toEqual([`pgferry: ${signal}: stopping (runs in flight finish first)`, 'pgferry: stopped']);
      expect(await a.sql(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgferry%'`)).toHaveLength(0);
    });
  }
});

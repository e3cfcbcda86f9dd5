/**
 * The `pgferry` command never prints a password: a distinctive one sits in the configuration
 * (in a connection string, percent-encoded, and in a pool config), and every command's stdout
 * and stderr is searched for it, on success and on failure (an unreachable port, a wrong
 * password, a bad configuration), with debug logs on.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withDatabase } from '../tools/pg-servers.js';
import { cli, shown, spawnCli, tempDir, writeConfig, type CliResult } from './fixtures/cli.js';
import { count, createDatabases, sqlAll, type TestDb } from './helpers/db.js';
import { waitFor } from './helpers/wait.js';

const DDL = 'CREATE TABLE t (id int PRIMARY KEY, v text)';

/** A login role with `password` that owns table t of `db` (roles are per server: made on each). */
async function owner(db: TestDb, role: string, password: string): Promise<void> {
  await db.sql(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role} LOGIN PASSWORD '${password}'; ELSE ALTER ROLE ${role} PASSWORD '${password}'; END IF; END $$`);
  await db.sql(`GRANT CREATE, CONNECT ON DATABASE ${db.name} TO ${role}`);
  await db.sql(`ALTER TABLE t OWNER TO ${role}`);
}

/** The same database as a pg pool config. */
function poolConfig(db: TestDb, user: string, password: string) {
  const u = new URL(db.serverUrl);
  return { host: u.hostname, port: Number(u.port), database: db.name, user, password };
}

describe('pgferry never prints a password', () => {
  it('in any command, on success and on failure, with debug logs on', { timeout: 240_000 }, async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const hex = randomBytes(4).toString('hex');
    const role = `cli_${hex}`;
    const password = `Zq7#cli-${hex}-pw`; // '#' is percent-encoded in a connection string
    const wrong = `Wr0ng#cli-${hex}-pw`;
    for (const db of [a!, b!]) await owner(db, role, password);
    const aUrl = withDatabase(a!.serverUrl, a!.name, { name: role, password });
    expect(aUrl).toContain(encodeURIComponent(password));

    const good = {
      databases: { a: aUrl, b: poolConfig(b!, role, password) },
      syncs: { s: { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: true } },
      store: { kind: 'postgres', database: 'b' },
    };
    const dir = tempDir();
    const results: [string, CliResult][] = [];
    let files = 0;
    const run = async (label: string, config: unknown, args: string[], expected: number, env: Record<string, string> = {}) => {
      const file = writeConfig(dir, config, `${label.replace(/\W+/g, '-')}-${++files}.json`);
      const r = await cli(['--config', file, ...args], { cwd: dir, env });
      results.push([`${label}: pgferry ${args.join(' ')}`, r]);
      expect(r.code, `${label}: pgferry ${args.join(' ')}\n${shown(r)}`).toBe(expected);
      return r;
    };

    // Success.
    await Promise.all([run('good', good, ['--help'], 0), run('good', good, ['print-sql'], 0)]);
    await run('good', good, ['install'], 0);
    await a!.sql(`INSERT INTO t VALUES (1, 'one')`);
    await run('good', good, ['status'], 0);
    await run('good', good, ['kick', 's', '--json'], 0, { DEBUG: 'pgferry:*' });
    await run('good', good, ['kick'], 0);
    await run('good', good, ['status', '--json'], 0);
    await b!.sql(`UPDATE t SET v = 'differs' WHERE id = 1`);
    await Promise.all([run('good', good, ['validate', 's'], 1), run('good', good, ['validate', 's', '--json'], 1, { DEBUG: 'pgferry:*' })]);

    const started = spawnCli(['--config', writeConfig(dir, good, 'start.json'), 'start'], { cwd: dir, env: { DEBUG: 'pgferry:*' } });
    await waitFor('pgferry start to start', () => started.output().stderr.includes('pgferry: started as '), { timeoutMs: 20_000 });
    await a!.sql(`INSERT INTO t VALUES (2, 'two')`);
    await waitFor('the row on b', async () => (await count(b!)) === 2, { timeoutMs: 10_000 });
    started.child.kill('SIGTERM');
    const stopped = await started.done;
    results.push(['good: pgferry start', stopped]);
    expect(stopped.code, shown(stopped)).toBe(0);

    // Failures, side by side (none of them changes anything): a port where nothing listens.
    const downUrl = aUrl.replace(/:(\d+)\//, ':1/');
    const down = { ...good, databases: { a: downUrl, b: good.databases.b } };
    // A control store that cannot be reached (its errors come from pg, not from pgferry).
    const storeDown = { ...good, store: { kind: 'postgres', connection: downUrl } };
    // A wrong password, in the connection string and in the pool config.
    const badPw = {
      ...good,
      databases: { a: withDatabase(a!.serverUrl, a!.name, { name: role, password: wrong }), b: poolConfig(b!, role, wrong) },
      store: { kind: 'memory' },
    };
    const debug = { DEBUG: 'pgferry:*' };
    const [downKick, , , , storeDownStatus, , badKick] = await Promise.all([
      run('down', down, ['kick', 's', '--json'], 1, debug),
      run('down', down, ['install'], 1),
      run('down', down, ['status', '--json'], 1),
      run('down', down, ['validate', 's'], 1),
      run('store down', storeDown, ['status', '--json'], 1),
      run('store down', storeDown, ['install'], 1),
      run('wrong password', badPw, ['kick', 's'], 1, debug),
      run('wrong password', badPw, ['status', '--json'], 1),
      run('wrong password', badPw, ['install'], 1),
      // Bad configurations that carry the password.
      run('bad field', { ...good, databases: { a: aUrl, b: { ...poolConfig(b!, role, password), sslmode: 'require' } } }, ['status'], 2),
      run('unset env', { ...good, databases: { a: aUrl, b: 'postgres://x:${PGFERRY_CLI_NOT_SET}@127.0.0.1/b' } }, ['kick', '--json'], 2),
      run('bad store', { ...good, store: { kind: 'postgres', database: 'a', connection: aUrl } }, ['status', '--json'], 2),
    ]);
    expect(downKick!.stderr).toContain('pgferry: CONNECTION_FAILED: Cannot connect to database "a"');
    expect(storeDownStatus!.stderr).toBe('pgferry: CONNECTION_FAILED: Cannot reach the control store: connect ECONNREFUSED 127.0.0.1:1. Check store in the config, and that its server is running.\n');
    expect(badKick!.stderr).toMatch(/^pgferry: CONNECTION_FAILED: Cannot connect to database "a" [^\n]*Check the user and password\.\n/m);

    // start waits for the database to come back: it is stopped by a signal as usual.
    const waiting = spawnCli(['--config', writeConfig(dir, down, 'down-start.json'), 'start'], { cwd: dir, env: debug });
    await waitFor('a failed try to reach a', () => waiting.output().stderr.includes('a: cannot try to hold s'), { timeoutMs: 20_000 });
    waiting.child.kill('SIGTERM');
    const waited = await waiting.done;
    results.push(['down: pgferry start', waited]);
    expect(waited.code, shown(waited)).toBe(0);

    await run('good', good, ['uninstall'], 0);

    for (const secret of [password, wrong, encodeURIComponent(password), encodeURIComponent(wrong)]) {
      for (const [what, r] of results) {
        expect(r.stdout.includes(secret), `${what}: stdout shows a password\n${r.stdout}`).toBe(false);
        expect(r.stderr.includes(secret), `${what}: stderr shows a password\n${r.stderr}`).toBe(false);
      }
    }
    // The runs did happen: the passwords were used, not lost.
    expect(await count(b!)).toBe(2);
    expect(results.length).toBeGreaterThan(20);
  });
});

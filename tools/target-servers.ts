/**
 * Development-only MariaDB and Redis servers for tests of the non-PostgreSQL targets (issue 15).
 *
 * Two ways to get each server, in this order:
 *  1. `PGFERRY_TEST_MYSQL` / `PGFERRY_TEST_REDIS`: the URL of a server that already runs
 *     (nothing is started or stopped).
 *  2. the operating system's binaries (Debian's `mariadb-server` and `redis-server` packages),
 *     started here on a free loopback port with their files in a new temporary directory that
 *     `stop()` deletes. As root they run as the `postgres` OS user, the one the PostgreSQL test
 *     servers run as (created when missing, see `postgresOsUser`).
 *
 * The handles say which version answered; neither module needs a client library: the version
 * comes from the server's greeting (MySQL protocol) or from `INFO server` (RESP), read here.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { baseDirFor, freePort, postgresOsUser, runProgram, startedServer, stopProcess, type OsUser } from './pg-servers.js';

export interface TargetServerHandle {
  /** `mysql://user:password@127.0.0.1:PORT/` or `redis://[default:password@]127.0.0.1:PORT`. */
  url: string;
  /** The version the server reports, e.g. `10.11.19-MariaDB-0+deb12u1` or `7.0.15`. */
  version: string;
  /** Where it came from: 'env' (a URL from the environment) | 'system' (started here). */
  kind: 'env' | 'system';
  stop(): Promise<void>;
}

/** User and password of the MariaDB account that tests use (it may create databases and users). */
const MYSQL_USER = 'pgferry';
const PASSWORD = 'pgferry-test';

/** Directories searched for the server programs before PATH (Debian puts mariadbd in /usr/sbin). */
const PROGRAM_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];

/** The first of `names` that is an executable file in PROGRAM_DIRS or PATH, or null. */
function findProgram(names: readonly string[]): string | null {
  const dirs = [...PROGRAM_DIRS, ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  for (const name of names) {
    for (const dir of dirs) {
      const file = path.join(dir, name);
      try {
        accessSync(file, constants.X_OK);
        return file;
      } catch {
        // not here
      }
    }
  }
  return null;
}

/** The MariaDB server and its datadir installer, or null when either is missing. */
export function mariaDbPrograms(): { server: string; installDb: string } | null {
  const server = findProgram(['mariadbd', 'mysqld']);
  const installDb = findProgram(['mariadb-install-db', 'mysql_install_db']);
  return server && installDb ? { server, installDb } : null;
}

/** The Redis server program, or null when it is missing. */
export function redisProgram(): string | null {
  return findProgram(['redis-server']);
}

/** What differs between the two kinds of server where they are found, named, or taken from the environment. */
const KINDS = {
  mariadb: {
    what: 'MariaDB',
    programs: 'mariadbd (or mysqld) and mariadb-install-db',
    find: mariaDbPrograms,
    pkg: 'mariadb-server',
    env: 'PGFERRY_TEST_MYSQL',
    example: 'mysql://user:password@host:3306/',
    versionOf: (url: string) => mysqlVersion(url),
  },
  redis: {
    what: 'Redis',
    programs: 'redis-server',
    find: redisProgram,
    pkg: 'redis-server',
    env: 'PGFERRY_TEST_REDIS',
    example: 'redis://host:6379',
    versionOf: (url: string) => redisVersion(url),
  },
} as const;

type Kind = keyof typeof KINDS;

/** The URL the environment gives for a server of `which`, if any. */
function urlFromEnv(which: Kind): string | undefined {
  return process.env[KINDS[which].env]?.trim() || undefined;
}

/**
 * Why `startMariaDb()` / `startRedis()` cannot start a server here, or null when it can (or when
 * the environment names a server to use): for tests that skip, saying why.
 */
export function targetServerMissing(which: Kind): string | null {
  return urlFromEnv(which) || KINDS[which].find() ? null : missing(which).message;
}

function missing(which: Kind): Error {
  const k = KINDS[which];
  return new Error(
    `cannot start a ${k.what} test server: ${k.programs} not found in ${PROGRAM_DIRS.join(', ')} or PATH. ` +
      `Install the Debian package ${k.pkg} (apt-get install ${k.pkg}), or set ${k.env} to the URL of a server to use (${k.example})`,
  );
}

/** A server started here: its URL, and what stops it and deletes its files. */
interface Started {
  url: string;
  stop(): Promise<void>;
}

/**
 * The server of `which` named by the environment, else one `start` starts from the programs `find`
 * finds, as the OS user to run servers as (null: this one), on a free port. Its version is asked
 * for last; a started server is stopped when that fails.
 */
async function provide<P>(
  which: Kind,
  find: () => P | null,
  start: (programs: P, ids: OsUser | null, port: number) => Promise<Started>,
): Promise<TargetServerHandle> {
  const k = KINDS[which];
  const fromEnv = urlFromEnv(which);
  if (fromEnv) return { url: fromEnv, version: await k.versionOf(fromEnv), kind: 'env', stop: async () => {} };
  const programs = find();
  if (!programs) throw missing(which);
  const { url, stop } = await start(programs, serverUser(), await freePort());
  try {
    return { url, version: await k.versionOf(url), kind: 'system', stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The OS user to run servers as: the `postgres` user when running as root, else none (this one). */
function serverUser(): OsUser | null {
  return os.userInfo().uid === 0 ? postgresOsUser() : null;
}

/**
 * A new temporary directory for a server's files, owned by (and only open to) `ids` when given.
 * `files` are written into it first, by name.
 */
async function serverDir(ids: OsUser | null, prefix: string, files: Record<string, string> = {}): Promise<string> {
  const dir = await fs.mkdtemp(path.join(baseDirFor(ids), prefix));
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text, { mode: 0o600 });
  if (ids) for (const p of [dir, ...Object.keys(files).map((f) => path.join(dir, f))]) await fs.chown(p, ids.uid, ids.gid);
  return dir;
}

/**
 * Runs `before` (a datadir installer, say), spawns the server `file` with `args` and `spawnOpts`
 * (which carry the OS user), waits for `readyLine`, and gives a stop function that sends
 * `shutdownSignal`, waits for the exit and deletes `dir`. Deletes `dir` when any step fails.
 */
async function startInDir(o: {
  file: string;
  args: string[];
  dir: string;
  spawnOpts: SpawnOptions;
  readyLine: string;
  name: string;
  shutdownSignal: NodeJS.Signals;
  before?: () => Promise<void>;
}): Promise<() => Promise<void>> {
  let proc: ChildProcess | null = null;
  try {
    await o.before?.();
    proc = spawn(o.file, o.args, o.spawnOpts);
    await startedServer(proc, { readyLine: o.readyLine, name: o.name, shutdownSignal: o.shutdownSignal });
  } catch (err) {
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await fs.rm(o.dir, { recursive: true, force: true });
    throw err;
  }
  const p = proc;
  return async () => {
    await stopProcess(p, o.shutdownSignal);
    await fs.rm(o.dir, { recursive: true, force: true });
  };
}

/** Settings shared by the datadir installer and the server: no option files, small and fast. Never for production. */
function mariaDbSettings(dir: string): string[] {
  return [
    '--no-defaults', // must come first
    `--datadir=${path.join(dir, 'data')}`,
    `--tmpdir=${dir}`,
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=16M',
    '--innodb-flush-log-at-trx-commit=2',
    '--innodb-doublewrite=0',
    '--skip-log-bin',
  ];
}

/**
 * Starts a MariaDB server (Debian's `mariadb-server`), or takes `PGFERRY_TEST_MYSQL`. The URL logs
 * in as a user with every privilege (CREATE DATABASE, CREATE USER, GRANT …) over TCP on 127.0.0.1;
 * the server's default character set is utf8mb4.
 */
export function startMariaDb(): Promise<TargetServerHandle> {
  return provide('mariadb', mariaDbPrograms, startMariaDbProcess);
}

async function startMariaDbProcess(programs: { server: string; installDb: string }, ids: OsUser | null, port: number): Promise<Started> {
  // Run at every start, before the server listens; the datadir is new each time.
  const init = [
    `CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${PASSWORD}';`,
    `GRANT ALL PRIVILEGES ON *.* TO '${MYSQL_USER}'@'%' WITH GRANT OPTION;`,
    '',
  ].join('\n');
  const dir = await serverDir(ids, 'pgferry-mariadb-', { 'init.sql': init });
  const spawnOpts: SpawnOptions = { ...(ids ?? {}), cwd: dir, env: { ...process.env, HOME: dir, LC_ALL: 'C' } };
  const stop = await startInDir({
    file: programs.server,
    args: [
      ...mariaDbSettings(dir),
      `--socket=${path.join(dir, 'mysqld.sock')}`,
      `--pid-file=${path.join(dir, 'mysqld.pid')}`,
      `--init-file=${path.join(dir, 'init.sql')}`,
      '--bind-address=127.0.0.1',
      `--port=${port}`,
      '--skip-networking=0',
      '--skip-name-resolve', // clients on 127.0.0.1 match '%', whatever the host name resolves to
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
      '--max-connections=200',
    ],
    dir,
    spawnOpts,
    readyLine: 'ready for connections',
    name: 'mariadbd',
    shutdownSignal: 'SIGTERM',
    before: () =>
      runProgram(programs.installDb, [...mariaDbSettings(dir), '--basedir=/usr', '--auth-root-authentication-method=normal', '--skip-test-db'], spawnOpts, {
        name: path.basename(programs.installDb),
        stdout: true,
      }),
  });
  return { url: `mysql://${MYSQL_USER}:${PASSWORD}@127.0.0.1:${port}/`, stop };
}

/**
 * Starts a Redis server (Debian's `redis-server`), or takes `PGFERRY_TEST_REDIS`: no persistence,
 * on 127.0.0.1. With `password`, clients must authenticate (`requirepass`); the URL carries it.
 */
export function startRedis(opts: { password?: string } = {}): Promise<TargetServerHandle> {
  return provide('redis', redisProgram, (program, ids, port) => startRedisProcess(program, ids, port, opts.password));
}

async function startRedisProcess(program: string, ids: OsUser | null, port: number, password: string | undefined): Promise<Started> {
  const dir = await serverDir(ids, 'pgferry-redis-');
  const stop = await startInDir({
    file: program,
    args: [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--daemonize', 'no',
      '--logfile', '',
      ...(password === undefined ? [] : ['--requirepass', password]),
    ],
    dir,
    spawnOpts: { ...(ids ?? {}), cwd: dir },
    readyLine: 'Ready to accept connections',
    name: 'redis-server',
    shutdownSignal: 'SIGTERM',
  });
  // The user "default" spelled out: redis-cli 7.0 ignores a password after an empty user name.
  const auth = password === undefined ? '' : `default:${encodeURIComponent(password)}@`;
  return { url: `redis://${auth}127.0.0.1:${port}`, stop };
}

/**
 * Connects to `host:port`, writes `request` (if any), and resolves with what `parse` makes of the
 * bytes received so far once it returns something other than undefined (or throws).
 */
function exchange<T>(host: string, port: number, request: string | null, parse: (received: Buffer) => T | undefined, timeoutMs = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const socket = net.connect({ host, port });
    const done = (err: Error | null, value?: T) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(value as T);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    socket.on('error', (err) => done(err));
    socket.on('close', () => done(new Error(`${host}:${port} closed the connection before answering`)));
    if (request !== null) socket.on('connect', () => socket.write(request));
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      try {
        const value = parse(received);
        if (value !== undefined) done(null, value);
      } catch (err) {
        done(err as Error);
      }
    });
  });
}

/**
 * The version a MySQL or MariaDB server announces in its greeting (protocol 10), without logging
 * in: MariaDB's `5.5.5-` compatibility prefix removed.
 */
export function mysqlVersion(url: string): Promise<string> {
  const u = new URL(url);
  return exchange(u.hostname, Number(u.port || 3306), null, (b) => {
    if (b.length < 4 || b.length < 4 + b.readUIntLE(0, 3)) return undefined;
    const payload = b.subarray(4, 4 + b.readUIntLE(0, 3));
    // An error packet instead of a greeting: 0xff, a 2-byte code, the message.
    if (payload[0] === 0xff) throw new Error(`${u.host} refused the connection: ${payload.subarray(3).toString('utf8')}`);
    if (payload[0] !== 10) throw new Error(`${u.host} does not speak the MySQL protocol (greeting byte ${payload[0]})`);
    const end = payload.indexOf(0, 1);
    return payload.subarray(1, end).toString('utf8').replace(/^5\.5\.5-/, '');
  });
}

/** One RESP command (an array of bulk strings). */
function respCommand(args: readonly string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
}

/**
 * The replies to `commands`, sent to the Redis server of `url` after an AUTH with its password
 * (and user) when it has one. Simple strings, integers and bulk strings only; an error reply
 * rejects.
 */
export function redisCommands(url: string, commands: readonly (readonly string[])[]): Promise<(string | null)[]> {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  const auth = password ? [u.username ? ['AUTH', decodeURIComponent(u.username), password] : ['AUTH', password]] : [];
  const all = [...auth, ...commands];
  return exchange(u.hostname, Number(u.port || 6379), all.map(respCommand).join(''), (b) => {
    const replies: (string | null)[] = [];
    let at = 0;
    while (replies.length < all.length) {
      const eol = b.indexOf('\r\n', at);
      if (eol < 0) return undefined;
      const type = String.fromCharCode(b[at]!);
      const line = b.subarray(at + 1, eol).toString('utf8');
      if (type === '-') throw new Error(`${u.host} answered ${all[replies.length]![0]} with an error: ${line}`);
      if (type === '+' || type === ':') {
        replies.push(line);
        at = eol + 2;
      } else if (type === '$') {
        const n = Number(line);
        if (n < 0) {
          replies.push(null);
          at = eol + 2;
          continue;
        }
        if (b.length < eol + 2 + n + 2) return undefined;
        replies.push(b.subarray(eol + 2, eol + 2 + n).toString('utf8'));
        at = eol + 2 + n + 2;
      } else {
        throw new Error(`${u.host} gave a reply of type "${type}", which redisCommands does not read`);
      }
    }
    return replies.slice(auth.length);
  });
}

/** The `redis_version` of `INFO server`. */
export async function redisVersion(url: string): Promise<string> {
  const [info] = await redisCommands(url, [['INFO', 'server']]);
  const version = /^redis_version:(.+)$/m.exec(info ?? '')?.[1]?.trim();
  if (!version) throw new Error(`${new URL(url).host}: INFO server has no redis_version`);
  return version;
}

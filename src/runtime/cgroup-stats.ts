/**
 * A container's resource use read straight from its cgroup and its network namespace's counters,
 * as cAdvisor (the kubelet's) reads them, without a call to Docker.
 *
 * Docker's stats API asks containerd, which asks the container's shim, which reads these same
 * files; with 200 containers running, one sample of each every interval was 200 of those round
 * trips, and on a busy node they took the CPU that container starts needed (a burst of 200 pods
 * came up a quarter slower). Here a sample is a few small reads per container.
 *
 * The agent finds the cgroup from `/proc/<pid>/cgroup` of the container's first process, so any
 * cgroup driver and parent work, and reads cgroup v2 (the unified hierarchy) or v1 (a hierarchy per
 * controller). Where it cannot (the agent in another pid namespace than the daemon, a layout it does
 * not know), it answers undefined and the caller asks Docker.
 *
 * The files are read synchronously: they live in memory (procfs, cgroupfs) and answer in
 * microseconds, where each asynchronous read cost four trips through libuv's thread pool and the
 * agent twice the CPU of the Docker round trips it replaced. They are read in the host worker's
 * thread (host-worker.ts), not the event loop's: while containers start, 16 of them took up to
 * 120 ms (likely the kernel's cgroup locks, which container start-up takes, or a wait for a core).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerStats } from './stats.js';

export interface CgroupPaths {
  /** Where the cgroup hierarchies are mounted. @default /sys/fs/cgroup */
  cgroupRoot: string;
  /** @default /proc */
  procRoot: string;
}

const DEFAULT_PATHS: CgroupPaths = { cgroupRoot: '/sys/fs/cgroup', procRoot: '/proc' };

/** A kernel file's text, read at once (see above); async so a missing file rejects like any failure. */
const readFile = async (path: string, _encoding: 'utf8'): Promise<string> => readFileSync(path, 'utf8');

/**
 * The figures of the container whose first process is `pid`, or undefined when they cannot be read
 * here. `containerId` guards against a reused pid: the process's cgroup must name the container.
 */
export async function cgroupStats(pid: number, containerId: string, hostMemoryBytes: number, paths: CgroupPaths = DEFAULT_PATHS): Promise<ContainerStats | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const proc = join(paths.procRoot, String(pid));
  try {
    const groups = parseProcCgroup(await readFile(join(proc, 'cgroup'), 'utf8'));
    const memoryV1 = groups.get('memory');
    const unified = groups.get('');
    const own = memoryV1 ?? unified;
    if (own === undefined || !own.includes(containerId)) return undefined;
    const [figures, net] = await Promise.all([memoryV1 !== undefined ? readV1(paths.cgroupRoot, groups) : readV2(join(paths.cgroupRoot, unified!)), readNetDev(join(proc, 'net', 'dev'))]);
    if (!figures) return undefined;
    return {
      at: new Date().toISOString(),
      cpuSeconds: figures.cpuSeconds,
      memoryWorkingSetBytes: Math.max(0, figures.memoryBytes - figures.inactiveFileBytes),
      memoryLimitBytes: figures.limitBytes !== null && figures.limitBytes > 0 && figures.limitBytes < hostMemoryBytes ? figures.limitBytes : null,
      networkRxBytes: net.rx,
      networkTxBytes: net.tx,
      diskReadBytes: figures.readBytes,
      diskWriteBytes: figures.writeBytes,
    };
  } catch {
    // Gone meanwhile, or not readable from here: Docker is asked instead.
    return undefined;
  }
}

interface Figures {
  cpuSeconds: number;
  memoryBytes: number;
  inactiveFileBytes: number;
  limitBytes: number | null;
  readBytes: number;
  writeBytes: number;
}

/** `/proc/<pid>/cgroup`: each controller (v1) or '' (the v2 line `0::`) to its path. */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const path = line.slice(second + 1);
    for (const controller of line.slice(first + 1, second).split(',')) out.set(controller, path);
  }
  return out;
}

/** cgroup v1: cpuacct, memory and blkio, each in its own hierarchy. */
async function readV1(root: string, groups: Map<string, string>): Promise<Figures | undefined> {
  const cpuPath = groups.get('cpuacct');
  const blkioPath = groups.get('blkio');
  const memory = join(root, 'memory', groups.get('memory')!);
  if (cpuPath === undefined) return undefined;
  const [usage, stat, limit, cpu, io] = await Promise.all([
    readFile(join(memory, 'memory.usage_in_bytes'), 'utf8'),
    readFile(join(memory, 'memory.stat'), 'utf8'),
    readFile(join(memory, 'memory.limit_in_bytes'), 'utf8'),
    readFirst([join(root, 'cpuacct', cpuPath, 'cpuacct.usage'), join(root, 'cpu,cpuacct', cpuPath, 'cpuacct.usage')]),
    blkioPath === undefined ? Promise.resolve('') : readBlkio(join(root, 'blkio', blkioPath)),
  ]);
  const disk = parseBlkio(io);
  return {
    cpuSeconds: Number(cpu.trim()) / 1e9,
    memoryBytes: Number(usage.trim()),
    inactiveFileBytes: keyed(stat).get('total_inactive_file') ?? 0,
    limitBytes: Number(limit.trim()),
    readBytes: disk.read,
    writeBytes: disk.write,
  };
}

/** cgroup v2: every controller's files in the one directory. */
async function readV2(dir: string): Promise<Figures | undefined> {
  const [cpuStat, current, stat, max, io] = await Promise.all([
    readFile(join(dir, 'cpu.stat'), 'utf8'),
    readFile(join(dir, 'memory.current'), 'utf8'),
    readFile(join(dir, 'memory.stat'), 'utf8'),
    readFile(join(dir, 'memory.max'), 'utf8'),
    readFile(join(dir, 'io.stat'), 'utf8').catch(() => ''),
  ]);
  const disk = parseIoStat(io);
  const limit = max.trim();
  return {
    cpuSeconds: (keyed(cpuStat).get('usage_usec') ?? 0) / 1e6,
    memoryBytes: Number(current.trim()),
    inactiveFileBytes: keyed(stat).get('inactive_file') ?? 0,
    limitBytes: limit === 'max' ? null : Number(limit),
    readBytes: disk.read,
    writeBytes: disk.write,
  };
}

/** Lines of `name value`, as memory.stat and cpu.stat write them. */
function keyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined) out.set(k, Number(v));
  }
  return out;
}

async function readFirst(files: string[]): Promise<string> {
  let last: unknown;
  for (const f of files) {
    try {
      return await readFile(f, 'utf8');
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/** What runc reports as Docker's io_service_bytes_recursive: the CFQ file when it says anything, else the throttle one. */
async function readBlkio(dir: string): Promise<string> {
  const cfq = await readFile(join(dir, 'blkio.io_service_bytes_recursive'), 'utf8').catch(() => '');
  if (parseBlkio(cfq).any) return cfq;
  return readFile(join(dir, 'blkio.throttle.io_service_bytes_recursive'), 'utf8').catch(() => '');
}

/** v1 blkio: `maj:min Read N` lines (and `Total N`); read and write bytes summed over devices. */
export function parseBlkio(text: string): { read: number; write: number; any: boolean } {
  let read = 0;
  let write = 0;
  let any = false;
  for (const line of text.split('\n')) {
    const [device, op, value] = line.trim().split(/\s+/);
    if (!device || !op || value === undefined) continue;
    any = true;
    if (op === 'Read') read += Number(value);
    else if (op === 'Write') write += Number(value);
  }
  return { read, write, any };
}

/** v2 io.stat: `maj:min rbytes=N wbytes=N rios=N ...` per device. */
export function parseIoStat(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    for (const field of line.trim().split(/\s+/).slice(1)) {
      const [k, v] = field.split('=');
      if (k === 'rbytes') read += Number(v);
      else if (k === 'wbytes') write += Number(v);
    }
  }
  return { read, write };
}

/** `/proc/<pid>/net/dev`: bytes received and sent by the namespace's interfaces but loopback, as Docker counts them. */
export async function readNetDev(file: string): Promise<{ rx: number; tx: number }> {
  return parseNetDev(await readFile(file, 'utf8'));
}

export function parseNetDev(text: string): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim() === 'lo') continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    rx += f[0] ?? 0;
    tx += f[8] ?? 0;
  }
  return { rx, tx };
}

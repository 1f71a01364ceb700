/**
 * Taking a test machine down to nothing, whatever state it was left in: the processes of its
 * containers (found by their cgroups, under the machine's `--cgroup-parent`), every process in its
 * network namespace (dockerd, containerd, shims, docker-proxy, the agent), the mounts under its
 * directory, its cgroups, namespace, veth and files. `Machines.close()` runs it after a clean stop;
 * `sweepMachines()` runs it over whatever a killed run left (scripts/test.sh's exit trap, and each
 * new cluster over runs whose owner is gone).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Every run's files: `<ROOT>/<run>/` (the run's number is the second octet of its 10.<run>.0.0/16). */
export const MACHINES_ROOT = '/var/lib/berth-machines';
/** Namespaces are `berth-m-<run>-<n>`; their cgroup parent has the same name. */
export const NS_PREFIX = 'berth-m-';
export const nsName = (runId: number, n: number): string => `${NS_PREFIX}${runId}-${n}`;
/** The host side of machine n's veth (Linux allows 15 characters; not `berth…`, which pod bridges use). */
export const vethName = (runId: number, n: number): string => `bm${runId}-${n}`;
/** The address every machine reaches the host at, on the host's loopback with this label. */
export const hubAddress = (runId: number): string => `10.${runId}.0.1`;
export const hubLabel = (runId: number): string => `lo:bm${runId}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function quietly(file: string, args: string[]): Promise<string> {
  try {
    return (await run(file, args, { timeout: 30_000 })).stdout;
  } catch {
    return '';
  }
}

function kill(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The cgroup directories named `name` under each hierarchy (v1: one per controller; v2: one). */
async function cgroupDirs(name: string): Promise<string[]> {
  const roots = ['/sys/fs/cgroup', ...(await readdir('/sys/fs/cgroup').catch(() => [] as string[])).map((c) => join('/sys/fs/cgroup', c))];
  const found: string[] = [];
  for (const root of roots) {
    const dir = join(root, name);
    if ((await stat(dir).catch(() => undefined))?.isDirectory()) found.push(dir);
  }
  return found;
}

/** Every directory below `dir`, deepest first, `dir` last. */
async function treeDeepestFirst(dir: string): Promise<string[]> {
  const below: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory()) below.push(...(await treeDeepestFirst(join(dir, entry.name))));
  }
  return [...below, dir];
}

async function cgroupPids(dirs: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const d of await treeDeepestFirst(dir)) {
      const text = await readFile(join(d, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (line.trim()) pids.add(Number(line));
    }
  }
  return [...pids];
}

async function nsPids(ns: string): Promise<number[]> {
  return (await quietly('ip', ['netns', 'pids', ns])).split('\n').filter((l) => l.trim()).map(Number);
}

/** Kills what `pids()` lists until it lists nothing (or 10 s pass). */
async function killAll(pids: () => Promise<number[]>): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = (await pids()).filter((p) => p !== process.pid);
    if (left.length === 0 || Date.now() > deadline) return;
    for (const p of left) kill(p);
    await sleep(100);
  }
}

/** Mount points at or under `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(dir + '/')))
    // mountinfo escapes space, tab, newline and backslash as octal.
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Machine n of run `runId`, gone: its containers, processes, mounts, cgroups, namespace and veth. */
export async function sweepMachine(runId: number, n: number): Promise<void> {
  const ns = nsName(runId, n);
  const cgroups = await cgroupDirs(ns);
  // Containers first: a killed shim would leave its container's processes running, orphaned.
  await killAll(() => cgroupPids(cgroups));
  await killAll(() => nsPids(ns));
  for (const point of await mountsUnder(join(MACHINES_ROOT, String(runId), `m${n}`))) await quietly('umount', ['-l', point]);
  for (const dir of cgroups) for (const d of await treeDeepestFirst(dir)) await rmdir(d).catch(() => undefined);
  await quietly('ip', ['netns', 'del', ns]);
  await quietly('ip', ['link', 'del', vethName(runId, n)]);
}

/** Run `runId`'s shared parts: the registry, the hub address, the tags it made on the host's Docker, its files. */
export async function sweepRun(runId: number): Promise<void> {
  const dir = join(MACHINES_ROOT, String(runId));
  const registryPid = Number((await readFile(join(dir, 'registry.pid'), 'utf8').catch(() => '')).trim());
  if (registryPid > 0 && (await readFile(`/proc/${registryPid}/cmdline`, 'utf8').catch(() => '')).includes('docker-registry')) kill(registryPid);
  for (const point of await mountsUnder(dir)) await quietly('umount', ['-l', point]);
  await quietly('ip', ['addr', 'del', `${hubAddress(runId)}/32`, 'dev', 'lo', 'label', hubLabel(runId)]);
  const tags = (await quietly('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}'])).split('\n');
  const ours = tags.filter((t) => t.startsWith(`${hubAddress(runId)}:`));
  if (ours.length) await quietly('docker', ['rmi', ...ours]);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Every machine and run left behind: all of them, or only those whose owning process has died
 * (`onlyOrphans`: at a cluster's start, and in scripts/test.sh's exit trap, which must not take the
 * machines of another test run on the same box).
 */
export async function sweepMachines(onlyOrphans = false): Promise<void> {
  const runs = new Map<number, Set<number>>();
  const add = (runId: number, n?: number) => {
    const set = runs.get(runId) ?? new Set<number>();
    if (n !== undefined) set.add(n);
    runs.set(runId, set);
  };
  for (const line of (await quietly('ip', ['netns', 'list'])).split('\n')) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-(\\d+)\\b`).exec(line);
    if (m) add(Number(m[1]), Number(m[2]));
  }
  for (const entry of await readdir(MACHINES_ROOT).catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    add(Number(entry));
    for (const sub of await readdir(join(MACHINES_ROOT, entry)).catch(() => [] as string[])) {
      const m = /^m(\d+)$/.exec(sub);
      if (m) add(Number(entry), Number(m[1]));
    }
  }
  for (const line of (await quietly('ip', ['-o', '-4', 'addr', 'show', 'dev', 'lo'])).split('\n')) {
    const m = /\blo:bm(\d+)\s*$/.exec(line.replace(/\\.*$/, '').trim());
    if (m) add(Number(m[1]));
  }
  for (const [runId, machines] of runs) {
    if (onlyOrphans) {
      const dir = join(MACHINES_ROOT, String(runId));
      const owner = Number((await readFile(join(dir, 'owner'), 'utf8').catch(() => '')).trim());
      if (owner > 0 && alive(owner)) continue;
      // No owner file: a run being set up this instant, or one killed in its first steps (then old).
      const made = (await stat(dir).catch(() => undefined))?.mtimeMs;
      if (!(owner > 0) && made !== undefined && Date.now() - made < 120_000) continue;
    }
    await Promise.all([...machines].map((n) => sweepMachine(runId, n)));
    await sweepRun(runId);
  }
}

// bench: burst — 200 pods created at once on one node: the pod list's p99 during the burst vs idle (target ≤ 5×), and all RUNNING vs docker run -d 8 at a time (target ≤ 1.2×)
/**
 * A burst: `--pods` (200) pods created at once through POST /api/v1/pods on an all-in-one `berth
 * server` (its agent on this host's Docker daemon), each the test image running `sleep`, with no
 * volume disk and no port.
 *
 * Two figures, each against a baseline of the same run:
 * - The API under the burst: a client lists GET /api/v1/pods from the first POST until every pod is
 *   RUNNING, `--list-pause` ms (50) after each answer (a client polling; back to back, the lister was
 *   itself a core's worth of load on a 2-core machine, which the docker baseline never carries); its
 *   p99 against the p99 of the same list when the server is idle, back to back, after the burst
 *   with the 200 pods RUNNING (the longest list the burst ever answers): the lowest of `--idle-rounds`
 *   (3) rounds of `--idle` (200) lists, a baseline at its best.
 * - All RUNNING: from the first POST until a list shows every pod RUNNING, against the docker CLI
 *   starting the same 200 containers 8 at a time, `docker run -d` as argv through execFile, until
 *   the last returns (each returns once its container runs). The same containers: the same image
 *   and command, on a user-defined bridge network as Berth's pods are on their team's, with the
 *   environment, labels, host name and restart policy Berth gives them. The same on Docker's default
 *   bridge is printed for reading. The baselines run first; their containers are removed before
 *   Berth's burst.
 *
 * Printed for reading too: the CPU the machine, dockerd, containerd, the server and this process
 * spent while the docker baseline started its containers and while Berth's burst ran (on 2 cores
 * Berth's own work and the lister's are taken from the container starts).
 *
 *   npm run bench -- burst [--pods 200] [--parallel 8] [--list-pause 50] [--idle 200] [--idle-rounds 3] [--nice -20] [--lister-rt 10]
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { DEFAULT_SERVER_NICE } from '../src/cli/cpu-priority.js';
import { ensureTestImage } from '../test/support/images.js';
import { apiClient, gone, intArg, log, msSince, pool, quantile, sleep, startChild, summary, verdict, type ChildServer } from './common.js';

const run = promisify(execFile);
const PODS = intArg('--pods', 200);
const PARALLEL = intArg('--parallel', 8);
const IDLE = intArg('--idle', 200);
const IDLE_ROUNDS = intArg('--idle-rounds', 3);
/** The lister's pause between an answer and its next list during the burst; 0: back to back. */
const LIST_PAUSE = intArg('--list-pause', 50);
/** The server's nice: `berth server`'s default unless told (0: as a plain process). */
const NICE = intArg('--nice', DEFAULT_SERVER_NICE, -20);
/** The lister's real-time priority (SCHED_FIFO) through the burst and idle rounds; 0: a plain process. */
const LISTER_RT = intArg('--lister-rt', 10);
const COMMAND = ['sleep', '86400'];
const LIST_RATIO = 5;
const START_RATIO = 1.2;

interface PodView {
  id: string;
  status: string;
}

/**
 * The docker CLI starting PODS containers, PARALLEL at a time, each `docker run -d` as argv, until
 * the last returns. With `network`, each joins that user-defined bridge network, as Berth's pods
 * join their team's; each gets the environment, labels, host name and restart policy Berth gives
 * the pod's container, so Docker is asked for the same work.
 */
async function dockerBaseline(image: string, network: string | null): Promise<{ ms: number; cpu: CpuUse }> {
  const tag = `berth-bench-burst=${randomBytes(4).toString('hex')}`;
  const names = Array.from({ length: PODS }, (_, i) => `berth-bench-burst-${process.pid}-${i}`);
  const env = Object.entries({ POD_ID: 'x', POD_HOSTNAME: 'x', DC_ID: 'local', GPU_COUNT: '0', CPU_COUNT: '2', MEM_GB: '7', VOLUME_ID: '', PUBLIC_IP: '127.0.0.1' }).flatMap(([k, v]) => [`BERTH_${k}=${v}`, `RUNPOD_${k}=${v}`]);
  const daemons = await daemonPids();
  const start = process.hrtime.bigint();
  try {
    const cpu = await measuredCpu(daemons, () => pool(names, PARALLEL, async (name) => {
      const labels = ['managed', 'pod', 'instance', 'node', 'version', 'reset', 'container'].map((l) => `bench.${l}=${name}`);
      await run('docker', [
        'run', '-d',
        '--name', name,
        '--hostname', name,
        '--restart', 'no',
        '--label', tag,
        ...(network ? ['--network', network] : []),
        ...env.flatMap((e) => ['-e', e.replace(/=x$/, `=${name}`)]),
        ...labels.flatMap((l) => ['--label', l]),
        image, ...COMMAND,
      ]);
    }));
    return { ms: msSince(start), cpu };
  } finally {
    await pool(names, PARALLEL, async (name) => {
      await run('docker', ['rm', '-f', name]).catch(() => undefined);
    });
  }
}

/** A user-defined bridge network made as the agent makes a team's (its own bridge and labels), for `fn`; removed after. */
async function withNetwork<T>(fn: (name: string) => Promise<T>): Promise<T> {
  const name = `berth-bench-burst-${randomBytes(4).toString('hex')}`;
  await run('docker', ['network', 'create', '--driver', 'bridge', '--label', 'berth-bench=burst', '-o', `com.docker.network.bridge.name=bb${randomBytes(5).toString('hex')}`, name]);
  try {
    return await fn(name);
  } finally {
    await run('docker', ['network', 'rm', name]).catch(() => undefined);
  }
}

/**
 * Puts this process's main thread (the lister's) under SCHED_FIFO at `priority`, its children back
 * to normal: the lister stands for a client on another machine, whose own wake-ups on this saturated
 * one must not count against the server. Says what it did.
 */
async function realTime(priority: number): Promise<string> {
  try {
    await run('chrt', ['--reset-on-fork', '--fifo', '--pid', String(priority), String(process.pid)]);
    return `SCHED_FIFO ${priority} (chrt), as a client on another machine`;
  } catch (err) {
    return `a plain process (chrt refused: ${(err as Error).message.split('\n')[0]})`;
  }
}

/** CPU seconds so far: the whole machine's busy time (/proc/stat), and one process's own (/proc/<pid>/stat; this process's when pid is 'self'). */
async function cpuSeconds(pid?: number | 'self'): Promise<number> {
  const HZ = 100;
  if (pid === undefined) {
    const [cpu] = (await readFile('/proc/stat', 'utf8')).split('\n');
    const f = cpu!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / HZ;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / HZ;
}

/** CPU seconds spent: by the whole machine, and by each process named. */
interface CpuUse {
  machine: number;
  of: Record<string, number>;
}

/** What the machine and the processes named spent on the CPU while `fn` ran. */
async function measuredCpu<T>(pids: Record<string, number | 'self'>, fn: () => Promise<T>): Promise<CpuUse & { result: T }> {
  const read = async () => ({ machine: await cpuSeconds(), of: Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([k, pid]) => [k, await cpuSeconds(pid).catch(() => NaN)] as const))) });
  const before = await read();
  const result = await fn();
  const after = await read();
  return { result, machine: after.machine - before.machine, of: Object.fromEntries(Object.keys(pids).map((k) => [k, after.of[k]! - before.of[k]!])) };
}

/** The daemons a container start keeps busy, by process name (pgrep -x). */
async function daemonPids(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of ['dockerd', 'containerd']) {
    const pid = Number((await run('pgrep', ['-x', '-o', name]).catch(() => ({ stdout: '' }))).stdout.trim());
    if (pid > 0) out[name] = pid;
  }
  return out;
}

const cpuLine = (c: CpuUse, wallMs: number): string =>
  `${c.machine.toFixed(1)} core·s on the machine (${(c.machine / (wallMs / 1000)).toFixed(2)} cores busy); ${Object.entries(c.of).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`;

/**
 * GET /api/v1/pods as the lister sends it, timed from the request to the whole answer, which is kept
 * as text, over node:http with a kept-alive connection. This process stands for a client on another
 * machine, at real-time priority: with fetch and a JSON parse of every list it spent as much CPU as
 * the server (18 s of a burst, as the bench printed), all of it taken from the container starts.
 */
function lister(base: string, key: string): () => Promise<{ ms: number; text: string }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL('/api/v1/pods', base);
  return () =>
    new Promise((resolve, reject) => {
      const start = process.hrtime.bigint();
      const req = http.get(url, { agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const ms = msSince(start);
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`GET /api/v1/pods answered ${res.statusCode}: ${text.slice(0, 200)}`));
          else resolve({ ms, text });
        });
      });
      req.on('error', reject);
    });
}

/** How many pods a list's text says are RUNNING: `"status":"RUNNING"` cannot occur inside a JSON string (its quotes would be escaped). */
function runningIn(text: string): number {
  let n = 0;
  for (let at = text.indexOf('"status":"RUNNING"'); at >= 0; at = text.indexOf('"status":"RUNNING"', at + 1)) n++;
  return n;
}

/** Every pod of a list RUNNING, and at least `count` of them: parsed, once the text says so. */
function allRunningIn(text: string, count: number): boolean {
  if (runningIn(text) < count) return false;
  const body = JSON.parse(text) as { pods?: PodView[] } | PodView[];
  const pods = Array.isArray(body) ? body : (body.pods ?? []);
  return pods.length >= count && pods.every((p) => p.status === 'RUNNING');
}

/**
 * Lists pods until `enough` (which sees each answer's text) says so, pushing each list's time, from
 * its request to its whole answer, into `times`; `pauseMs` between an answer and the next request.
 */
async function lists(list: () => Promise<{ ms: number; text: string }>, times: number[], pauseMs: number, enough: (text: string) => boolean): Promise<void> {
  for (;;) {
    const res = await list();
    times.push(res.ms);
    if (enough(res.text)) return;
    if (pauseMs > 0) await sleep(pauseMs);
  }
}

async function main(): Promise<void> {
  const docker = new Docker();
  const image = await ensureTestImage(docker);
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-burst-'));
  let server: ChildServer | undefined;
  const created: string[] = [];
  try {
    log(`baseline: docker run -d ${PODS} containers on a network of their own, ${PARALLEL} at a time`);
    const baseline = await withNetwork((network) => dockerBaseline(image, network));
    const dockerMs = baseline.ms;
    log(`baseline took ${(dockerMs / 1000).toFixed(1)} s`);
    log(`for reading: the same on Docker's default bridge`);
    const bridgeMs = (await dockerBaseline(image, null)).ms;
    log(`took ${(bridgeMs / 1000).toFixed(1)} s`);

    // A session of its own, as a service has: its nice then weighs against dockerd's (cpu-priority.ts).
    server = await startChild('berth-server', ['--data-dir', join(work, 'data'), '--nice', String(NICE)], {}, { ownSession: true });
    const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
    const api = apiClient(server.url, key);
    const list = lister(server.url, key);
    log(`berth server ${server.url} (pid ${server.pid}, nice ${NICE})`);
    const listerRt = LISTER_RT > 0 ? await realTime(LISTER_RT) : 'a plain process';
    log(`lister: ${listerRt}`);

    // The burst, with a client listing pods back to back until every pod is RUNNING.
    const during: number[] = [];
    const postMs: number[] = [];
    const start = process.hrtime.bigint();
    let allRunning: number | undefined;
    /** Set once every POST has been answered: the lister stops only after. */
    const posted: { at?: number } = {};
    let answered = 0;
    const burstCpu = measuredCpu({ ...(await daemonPids()), 'berth server': server.pid, 'bench client': 'self' }, async () => {
      const listing = lists(list, during, LIST_PAUSE, (text) => {
        if (posted.at !== undefined && allRunningIn(text, PODS)) {
          allRunning ??= msSince(start);
          return true;
        }
        if (msSince(start) > 600_000) throw new Error(`not all pods RUNNING after 600 s: ${runningIn(text)} of ${PODS}`);
        return false;
      });
      await Promise.all(
        Array.from({ length: PODS }, async (_, i) => {
          const res = await api<{ id: string }>('POST', '/api/v1/pods', { name: `burst-${i}`, image, command: COMMAND, volumeGb: 0 });
          if (res.status !== 201) throw new Error(`POST /api/v1/pods answered ${res.status}: ${JSON.stringify(res.body)}`);
          created.push(res.body.id);
          postMs.push(res.ms);
        }),
      );
      answered = posted.at = msSince(start);
      log(`all ${PODS} answered in ${(answered / 1000).toFixed(2)} s`);
      await listing;
    });
    const burstUse = await burstCpu;
    log(`all RUNNING after ${(allRunning! / 1000).toFixed(1)} s; ${during.length} lists meanwhile`);

    // Idle: the same list, the same 200 pods, nothing else going on.
    let idle: number[] = [];
    for (let round = 0; round < IDLE_ROUNDS; round++) {
      await sleep(3000);
      const times: number[] = [];
      await lists(list, times, 0, () => times.length >= IDLE);
      log(`idle round ${round + 1}: p99 ${quantile(times, 0.99).toFixed(1)} ms`);
      if (!idle.length || quantile(times, 0.99) < quantile(idle, 0.99)) idle = times;
    }

    const p99During = quantile(during, 0.99);
    const p99Idle = quantile(idle, 0.99);
    const listRatio = p99During / p99Idle;
    const startRatio = allRunning! / dockerMs;
    summary('burst', [
      ['burst', `${PODS} pods (${image}, ${COMMAND.join(' ')}, no volume disk) POSTed at once to an all-in-one server`],
      ['POSTs answered', `all in ${(answered / 1000).toFixed(2)} s; each p50 ${quantile(postMs, 0.5).toFixed(0)} ms p99 ${quantile(postMs, 0.99).toFixed(0)} ms`],
      ['server', `in a session of its own at nice ${NICE}${NICE === DEFAULT_SERVER_NICE ? " (berth server's default)" : ''}`],
      ['lister', `during the burst, GET /api/v1/pods ${LIST_PAUSE > 0 ? `${LIST_PAUSE} ms after each answer` : 'back to back'}; idle, back to back; ${listerRt}`],
      ['GET /api/v1/pods during the burst', `p50 ${quantile(during, 0.5).toFixed(1)} ms  p99 ${p99During.toFixed(1)} ms  max ${Math.max(...during).toFixed(0)} ms (${during.length} lists)`],
      [`GET /api/v1/pods idle, ${PODS} pods`, `p50 ${quantile(idle, 0.5).toFixed(1)} ms  p99 ${p99Idle.toFixed(1)} ms (${idle.length} lists; the best of ${IDLE_ROUNDS} rounds)`],
      [`list p99 burst/idle (target ≤ ${LIST_RATIO})`, `${listRatio.toFixed(2)}  ${verdict(listRatio, LIST_RATIO)}`],
      ['all RUNNING (berth)', `${(allRunning! / 1000).toFixed(1)} s after the first POST`],
      [`docker run -d, ${PARALLEL} at a time`, `${(dockerMs / 1000).toFixed(1)} s for ${PODS} containers on a user-defined bridge network, as Berth's pods are`],
      [`all RUNNING berth/docker (target ≤ ${START_RATIO})`, `${startRatio.toFixed(2)}  ${verdict(startRatio, START_RATIO)}`],
      ['CPU, docker baseline', cpuLine(baseline.cpu, dockerMs)],
      ['CPU, berth burst', cpuLine(burstUse, allRunning!)],
      [`the same on Docker's default bridge`, `${(bridgeMs / 1000).toFixed(1)} s; berth/that ${(allRunning! / bridgeMs).toFixed(2)} (for reading: Docker's own cost of a user-defined network is ${(dockerMs / bridgeMs).toFixed(2)}×)`],
    ]);
  } finally {
    if (server && created.length) {
      const key = (await readFile(join(work, 'data', 'admin.key'), 'utf8')).trim();
      const api = apiClient(server.url, key);
      await pool(created, 16, async (id) => {
        await api('POST', `/api/v1/pods/${id}/terminate`, {}).catch(() => undefined);
      });
      await pool(created, 16, async (id) => {
        await gone(docker, `berth.pod=${id}`, 120_000).catch(() => undefined);
      });
    }
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();

// bench: metrics — the agent's CPU per usage collection with 100 running containers on one node vs `docker stats --no-stream` for the same containers (target ≤ 2% of one core at a 10 s interval), and GET /metrics with 10,000 pods in the store vs /healthz (target p99 ≤ 100 ms)
/**
 * Two figures, each beside a baseline measured in the same run:
 *
 *   collection  100 containers of the test image (sleeping), labelled as one node's instances, are
 *               sampled by the agent's own UsageCollector (one container list, Docker's stats of
 *               each read once, all at once) in this process; the CPU this process spends per
 *               collection (user + system, process.cpuUsage) is the agent's cost. As a share of one
 *               core at the default 10 s interval it has the target (≤ 2%). Baseline: the CPU of
 *               `docker stats --no-stream` over the same 100 containers (the docker CLI's user +
 *               system time, from /usr/bin/time): what reading the same figures costs with Docker's
 *               own tool.
 *   scrape      a `berth server` (a child process, no agent) whose store holds 10,000 pods, 100 of
 *               them running on a registered node with usage samples reported as an agent would;
 *               GET /metrics with the admin key, sequentially. Baseline: GET /healthz on the same
 *               server, the cheapest route it has. p99 has the target (≤ 100 ms).
 *
 *   npm run bench -- metrics [--containers 100] [--pods 10000] [--collections 10] [--scrapes 200]
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import pino from 'pino';
import { LABELS } from '../src/agent/labels.js';
import { UsageCollector } from '../src/agent/usage-collector.js';
import { hashKey } from '../src/control/keys.js';
import { compilePodSpec, instanceIdOf, newNodeCredentialId, newPodId, NODE_CREDENTIAL_PREFIX, type InstanceUsage, type NodeId, type OwnerId, type PodId, type PodStatus } from '../src/model/index.js';
import { DockerRuntime } from '../src/runtime/docker.js';
import { openStore } from '../src/store/index.js';
import { ensureTestImage, TEST_IMAGE } from '../test/support/images.js';
import { gone, intArg, log, median, pool, sleep, startChild, stats, summary, verdict } from './common.js';

const run = promisify(execFile);
const CONTAINERS = intArg('--containers', 100);
const PODS = intArg('--pods', 10_000);
const COLLECTIONS = intArg('--collections', 10);
const SCRAPES = intArg('--scrapes', 200);
const INTERVAL_MS = 10_000;
const COLLECT_TARGET_PCT = 2;
const SCRAPE_P99_TARGET_MS = 100;
const RUN = `bench-metrics-${process.pid}`;
const BENCH_LABEL = 'berth-bench.metrics';

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

/** A process's user + system CPU so far, in ms, from /proc (clock ticks of 10 ms). */
async function procCpuMs(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The agent's collection over `n` real containers: CPU ms per collection, and the wall time. */
async function collection(docker: Docker): Promise<{ agentCpuMs: number[]; wallMs: number[]; dockerStatsCpuMs: number[]; ids: string[] }> {
  const node = `${RUN}-node` as NodeId;
  log(`starting ${CONTAINERS} containers of ${TEST_IMAGE}`);
  const ids: string[] = [];
  await pool([...Array(CONTAINERS).keys()], 8, async (i) => {
    const c = await docker.createContainer({
      Image: TEST_IMAGE,
      Cmd: ['sleep', '3600'],
      Labels: { [BENCH_LABEL]: RUN, [LABELS.node]: node, [LABELS.instance]: `${RUN}-${i}-0`, [LABELS.container]: 'main' },
      HostConfig: { NetworkMode: 'bridge' },
    });
    await c.start();
    ids.push(c.id);
  });
  const collector = new UsageCollector({
    runtime: await DockerRuntime.create(),
    channel: {},
    nodeId: node,
    log: pino({ level: 'silent' }),
    intervalMs: INTERVAL_MS,
    gpusOf: () => [],
    gpusSimulated: false,
  });
  const first = await collector.collect();
  if (first.length !== CONTAINERS) throw new Error(`the collector saw ${first.length} instances, not ${CONTAINERS}`);
  const agentCpuMs: number[] = [];
  const wallMs: number[] = [];
  for (let i = 0; i < COLLECTIONS; i++) {
    // A gap as between real intervals: Docker answers a one-shot read at once when no read of it is under way.
    await sleep(2000);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const samples = await collector.collect();
    wallMs.push(performance.now() - t0);
    agentCpuMs.push(cpuMs(process.cpuUsage(cpu0)));
    if (samples.length !== CONTAINERS || samples.some((s) => s.usage.containers.length !== 1)) throw new Error('a collection missed containers');
  }
  log('docker stats --no-stream over the same containers');
  const dockerStatsCpuMs: number[] = [];
  for (let i = 0; i < Math.min(5, COLLECTIONS); i++) {
    await sleep(2000);
    const { stderr } = await run('/usr/bin/time', ['-f', 'BENCHTIME %U %S', 'docker', 'stats', '--no-stream', '--format', '{{.ID}} {{.CPUPerc}} {{.MemUsage}}', ...ids], { maxBuffer: 16 << 20 });
    const m = /BENCHTIME ([\d.]+) ([\d.]+)/.exec(stderr);
    if (!m) throw new Error(`no time from /usr/bin/time: ${stderr}`);
    dockerStatsCpuMs.push((Number(m[1]) + Number(m[2])) * 1000);
  }
  return { agentCpuMs, wallMs, dockerStatsCpuMs, ids };
}

/**
 * A store of `PODS` pods, 100 of them on `node` and running; returns their ids, and a credential of
 * the node (as a join gives one: only a node's own credential may report its usage).
 */
async function seed(dataDir: string, node: NodeId): Promise<{ running: PodId[]; credential: string }> {
  const store = await openStore({ dataDir });
  const at = new Date().toISOString();
  await store.upsertNode({ id: node, name: 'bench-node', publicIp: '127.0.0.1', labels: {}, capacity: { cpus: 64, memoryMb: 262144, gpus: [], gpusSimulated: false }, agentVersion: 'bench', registeredAt: at, lastSeenAt: at });
  const credential = NODE_CREDENTIAL_PREFIX + randomBytes(32).toString('base64url');
  await store.createNodeCredential({ id: newNodeCredentialId(), nodeId: node, hash: hashKey(credential), tokenId: null, createdAt: at, lastUsedAt: null });
  const spec = compilePodSpec({ name: 'p', image: TEST_IMAGE });
  const running: PodId[] = [];
  const statuses: PodStatus[] = ['RUNNING', 'EXITED', 'TERMINATED', 'ERROR'];
  for (let base = 0; base < PODS; base += 500) {
    await store.transaction(async (tx) => {
      for (let i = base; i < Math.min(PODS, base + 500); i++) {
        const id = newPodId();
        const isRunning = i < CONTAINERS;
        const nodeId = isRunning ? node : null;
        if (isRunning) running.push(id);
        await tx.createPod(
          { id, owner: `owner-${i % 50}` as OwnerId, name: `p${i}`, desiredStatus: 'RUNNING', status: isRunning ? 'RUNNING' : statuses[i % 4]!, statusMessage: null, nodeId, createdAt: at, updatedAt: at, lastStartedAt: null, terminatedAt: null, keepAliveUntil: null, lastStoppedAt: null, lifetimeNote: null } as Parameters<typeof tx.createPod>[0],
          spec,
          [{ id: instanceIdOf(id, 0), podId: id, ordinal: 0, nodeId, goal: 'running', resetGeneration: 0, restartGeneration: 0, gpuUuids: [], hostPorts: {}, observed: null }],
        );
      }
    });
  }
  await store.close();
  return { running, credential };
}

const sample = (at: string, i: number): InstanceUsage => ({
  at,
  containers: [{ name: 'main', cpuSeconds: i, cpuCores: 0.1, memoryBytes: 50e6, memoryLimitBytes: null, networkRxBytes: 1e6, networkTxBytes: 2e6, diskReadBytes: 0, diskWriteBytes: 0 }],
  gpus: [],
});

async function scrape(): Promise<{ metricsMs: number[]; healthzMs: number[]; bytes: number; series: number; metricsCpuMs: number; healthzCpuMs: number }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'berth-bench-metrics-'));
  const node = `${RUN}-scrape-node` as NodeId;
  try {
    log(`seeding ${PODS} pods`);
    const { running, credential } = await seed(dataDir, node);
    const server = await startChild('berth-server', ['--data-dir', dataDir, '--no-agent']);
    try {
      const { readFile } = await import('node:fs/promises');
      const key = (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim();
      const auth = { authorization: `Bearer ${key}` };
      // Usage as the node's agent reports it.
      const at = new Date().toISOString();
      const res = await fetch(`${server.url}/api/v1/agent/usage`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: JSON.stringify({ nodeId: node, samples: running.map((id, i) => ({ instanceId: instanceIdOf(id, 0), usage: sample(at, i) })) }) });
      if (res.status !== 204) throw new Error(`usage report answered ${res.status}: ${await res.text()}`);
      const get = async (path: string, headers: Record<string, string>) => {
        const t0 = performance.now();
        const r = await fetch(server.url + path, { headers });
        const text = await r.text();
        if (r.status !== 200) throw new Error(`${path} answered ${r.status}: ${text.slice(0, 200)}`);
        return { ms: performance.now() - t0, text };
      };
      const first = await get('/metrics', auth);
      const series = first.text.split('\n').filter((l) => /^container_cpu_usage_seconds_total\{/.test(l)).length;
      if (series !== CONTAINERS) throw new Error(`the scrape shows ${series} containers' CPU, not ${CONTAINERS}`);
      for (let i = 0; i < 20; i++) await get('/healthz', {});
      const metricsMs: number[] = [];
      const healthzMs: number[] = [];
      // Interleaved, so both see the same machine.
      for (let i = 0; i < SCRAPES; i++) {
        metricsMs.push((await get('/metrics', auth)).ms);
        healthzMs.push((await get('/healthz', {})).ms);
      }
      // The server's own CPU per request, which the machine's other load does not stretch as it stretches latency.
      const cpuPer = async (path: string, headers: Record<string, string>): Promise<number> => {
        const before = await procCpuMs(server.pid);
        for (let i = 0; i < SCRAPES; i++) await get(path, headers);
        return ((await procCpuMs(server.pid)) - before) / SCRAPES;
      };
      const metricsCpuMs = await cpuPer('/metrics', auth);
      const healthzCpuMs = await cpuPer('/healthz', {});
      return { metricsMs, healthzMs, metricsCpuMs, healthzCpuMs, bytes: first.text.length, series: first.text.split('\n').filter((l) => l && !l.startsWith('#')).length };
    } finally {
      await server.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

const docker = new Docker();
await ensureTestImage();
let c: Awaited<ReturnType<typeof collection>>;
try {
  c = await collection(docker);
} finally {
  const mine = await docker.listContainers({ all: true, filters: { label: [`${BENCH_LABEL}=${RUN}`] } });
  await pool(mine, 8, async (x) => void (await docker.getContainer(x.Id).remove({ force: true }).catch(() => undefined)));
  await gone(docker, `${BENCH_LABEL}=${RUN}`, 60_000);
}
const s = await scrape();

const agent = median(c.agentCpuMs);
const dockerStats = median(c.dockerStatsCpuMs);
const pct = (agent / INTERVAL_MS) * 100;
const m = stats(s.metricsMs);
const h = stats(s.healthzMs);
summary('metrics', [
  ['collection, containers', String(CONTAINERS)],
  ['agent CPU per collection', `${agent.toFixed(1)} ms median (min ${Math.min(...c.agentCpuMs).toFixed(1)}, max ${Math.max(...c.agentCpuMs).toFixed(1)}; ${COLLECTIONS} collections), wall ${median(c.wallMs).toFixed(0)} ms`],
  ['  as % of one core at 10 s', `${pct.toFixed(2)}% — target ≤ ${COLLECT_TARGET_PCT}%: ${verdict(pct, COLLECT_TARGET_PCT)}`],
  ['docker stats --no-stream CPU', `${dockerStats.toFixed(0)} ms median (the docker CLI's user + system, same containers)`],
  ['  agent / docker stats', `${(agent / dockerStats).toFixed(2)}×`],
  ['scrape, pods in store', `${PODS} (${CONTAINERS} running with usage), ${s.series} samples, ${(s.bytes / 1024).toFixed(0)} KiB`],
  ['GET /metrics', `p50 ${m.p50.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms (${SCRAPES} scrapes) — target p99 ≤ ${SCRAPE_P99_TARGET_MS} ms: ${verdict(m.p99, SCRAPE_P99_TARGET_MS)}`],
  ['GET /healthz (baseline)', `p50 ${h.p50.toFixed(2)} ms, p99 ${h.p99.toFixed(2)} ms`],
  ['  /metrics / /healthz', `p50 ${(m.p50 / h.p50).toFixed(1)}×, p99 ${(m.p99 / h.p99).toFixed(1)}×`],
  ['server CPU per request', `/metrics ${s.metricsCpuMs.toFixed(2)} ms, /healthz ${s.healthzCpuMs.toFixed(2)} ms (${(s.metricsCpuMs / Math.max(0.01, s.healthzCpuMs)).toFixed(1)}×; /proc, ${SCRAPES} each)`],
]);

// bench: scheduler — one placement pass: 50,000 waiting pods onto 5,000 simulated nodes (mixed GPUs, constraints), vs writing the same placements with no decision (target ≥ 5,000 placements/s)
/**
 * Placements per second into the control plane, in process: a PodService over a real store (a
 * SQLite file in a temp dir; PostgreSQL too when BERTH_BENCH_DATABASE_URL names one). The cluster:
 * `--nodes` (5,000) nodes written as an agent's registration writes them (AgentService.register's
 * record: labels for rack, zone and GPU class, data center; mixed CPU and memory; 40% CPU-only, the
 * rest with 2 to 8 GPUs of one of four types, some with two types). The work: `--pods` (50,000) pods
 * queued while no node had joined, as a queue fills before machines come up: CPU-only pods,
 * GPU pods of one type or with a preference list and 1 to 8 GPUs, and pods with Marathon
 * constraints (3 instances UNIQUE hostname, 4 instances GROUP_BY rack, LIKE zone, UNLIKE GPU class,
 * 3 instances MAX_PER rack 2). Then one placement pass (PodService.placeWaiting, what runs when a
 * node joins or every 10 s) places them; the figure is instances placed / the pass's wall time.
 *
 * Baseline, same run, same store kind, same data (a copy of the set-up database): the store's floor
 * for the same outcome with no placement decision — the rows Berth's pass wrote (each placed
 * instance's node and GPUs, each of their pods' new status) written with the same store call
 * (placeInstances) in batches of the same size. berth/floor shows what reading, deciding and
 * bookkeeping cost over the writes any scheduler must make; 1.00 would be free.
 *
 * The p99 of one placement is the decision (place() with the pass's loads), from the PodService's
 * placement timer, as the metrics endpoint reads it.
 *
 *   npm run bench -- scheduler [--nodes 5000] [--pods 50000]
 */

import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA_CENTER_LABEL, DEFAULT_DATA_CENTER } from '../src/control/agents.js';
import { PodService } from '../src/control/pods.js';
import { summarize } from '../src/control/pod-status.js';
import { compilePodSpec, instanceIdOf, type Gpu, type Instance, type NodeId, type OwnerId, type PodId, type PodInput } from '../src/model/index.js';
import { openStore, SQLITE_FILE_NAME, type PodPatch, type Store } from '../src/store/index.js';
import { postgresSchema } from '../test/support/stores.js';
import { intArg, log, msSince, quantile, summary, verdict } from './common.js';

const NODES = intArg('--nodes', 5000);
const PODS = intArg('--pods', 50000);
const TARGET_RATE = 5000;
/** Placements written per transaction by the baseline: PLACEMENT_BATCH in placement-batch.ts. */
const BATCH = 256;

const TYPES = ['NVIDIA H100 80GB HBM3', 'NVIDIA A100-SXM4-80GB', 'NVIDIA L40S', 'NVIDIA GeForce RTX 4090'] as const;
const CLASS: Record<string, string> = { [TYPES[0]]: 'hopper', [TYPES[1]]: 'ampere', [TYPES[2]]: 'ada', [TYPES[3]]: 'ada' };
const OWNER = 'bench' as OwnerId;

/** A small seeded generator (mulberry32): the same cluster and pods on every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, weighted: [T, number][]): T {
  const total = weighted.reduce((n, [, w]) => n + w, 0);
  let x = r() * total;
  for (const [v, w] of weighted) if ((x -= w) < 0) return v;
  return weighted[weighted.length - 1]![0];
}

async function addNodes(store: Store): Promise<void> {
  const r = rng(1);
  const at = new Date().toISOString();
  await store.transaction(async (tx) => {
    for (let i = 0; i < NODES; i++) {
      const gpus: Gpu[] = [];
      const add = (name: string, n: number): void => {
        for (let j = 0; j < n; j++) gpus.push({ index: gpus.length, uuid: `GPU-${i}-${gpus.length}`, name, memoryMb: 81920 });
      };
      const kind = pick(r, [['cpu', 40], ['h100', 15], ['a100', 15], ['l40s', 12], ['4090', 12], ['mixed', 6]]);
      if (kind === 'h100') add(TYPES[0], 8);
      else if (kind === 'a100') add(TYPES[1], pick(r, [[4, 1], [8, 3]]));
      else if (kind === 'l40s') add(TYPES[2], pick(r, [[4, 1], [8, 1]]));
      else if (kind === '4090') add(TYPES[3], pick(r, [[2, 1], [4, 2]]));
      else if (kind === 'mixed') {
        add(TYPES[1], 4);
        add(TYPES[2], 4);
      }
      const labels: Record<string, string> = { [DATA_CENTER_LABEL]: DEFAULT_DATA_CENTER, rack: `r${Math.floor(i / 50)}`, zone: `z${i % 4}` };
      if (gpus[0]) labels['gpu-class'] = CLASS[gpus[0].name]!;
      await tx.upsertNode({
        id: `n${String(i).padStart(11, '0')}` as NodeId,
        name: `node-${String(i).padStart(5, '0')}`,
        publicIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        labels,
        capacity: { cpus: pick(r, [[32, 1], [64, 2], [96, 1], [128, 1]]), memoryMb: pick(r, [[128, 1], [256, 2], [512, 1]]) * 1024, gpus, gpusSimulated: true },
        agentVersion: 'bench',
        registeredAt: at,
        lastSeenAt: at,
      });
    }
  });
}

function podInput(r: () => number, i: number): PodInput {
  const base: PodInput = { name: `p${i}`, image: 'busybox', vcpuCount: pick(r, [[1, 3], [2, 3], [4, 2], [8, 1]]), memoryGb: pick(r, [[2, 3], [4, 3], [8, 2], [16, 1]]) };
  const kind = pick(r, [['cpu', 62], ['gpu', 15], ['prefer', 5], ['unique', 6], ['group', 4], ['like', 4], ['unlike', 2], ['maxper', 2]]);
  const gpuCount = pick(r, [[1, 60], [2, 25], [4, 10], [8, 5]]);
  switch (kind) {
    case 'cpu':
      return base;
    case 'gpu':
      return { ...base, gpuCount, gpuTypeIds: [pick(r, TYPES.map((t) => [t, 1] as [string, number]))] };
    case 'prefer':
      return { ...base, gpuCount, gpuTypeIds: [TYPES[0], TYPES[1]] };
    case 'unique':
      return { ...base, instances: 3, constraints: [{ field: 'hostname', operator: 'UNIQUE' }] };
    case 'group':
      return { ...base, instances: 4, constraints: [{ field: 'rack', operator: 'GROUP_BY' }] };
    case 'like':
      return { ...base, gpuCount: 1, constraints: [{ field: 'zone', operator: 'LIKE', value: 'z0|z1' }] };
    case 'unlike':
      return { ...base, gpuCount: 1, constraints: [{ field: 'gpu-class', operator: 'UNLIKE', value: 'hopper' }] };
    default:
      return { ...base, instances: 3, constraints: [{ field: 'rack', operator: 'MAX_PER', value: '2' }] };
  }
}

/** The pods as a create with no node registered leaves them: every instance waiting, unplaced. */
async function addPods(store: Store): Promise<number> {
  const r = rng(2);
  let instances = 0;
  for (let start = 0; start < PODS; start += 1000) {
    await store.transaction(async (tx) => {
      for (let i = start; i < Math.min(PODS, start + 1000); i++) {
        const spec = compilePodSpec(podInput(r, i));
        // Ids fixed by position, so the floor's copy (PostgreSQL: a second schema filled alike) has the same rows.
        const id = `p${String(i).padStart(13, '0')}` as PodId;
        const insts = Array.from({ length: spec.instances }, (_, ordinal) => ({
          id: instanceIdOf(id, ordinal),
          podId: id,
          ordinal,
          nodeId: null,
          goal: 'running' as const,
          resetGeneration: 0,
          restartGeneration: 0,
          gpuUuids: [],
          hostPorts: {},
          observed: null,
        }));
        instances += insts.length;
        const reason = 'waiting for resources: no node has registered yet';
        const { status, message } = summarize('RUNNING', insts.map((x) => ({ ...x, specVersion: 1, revision: 0 })), reason);
        const at = new Date().toISOString();
        await tx.createPod({ id, owner: OWNER, name: spec.name, desiredStatus: 'RUNNING', status, statusMessage: message, nodeId: null, createdAt: at, updatedAt: at, lastStartedAt: null, terminatedAt: null }, spec, insts);
      }
    });
  }
  return instances;
}

interface Pass {
  ms: number;
  placed: Instance[];
  waiting: number;
  decisions: number[];
}

async function berthPass(store: Store): Promise<Pass> {
  const pods = new PodService(store);
  const decisions: number[] = [];
  pods.placements.observe = (seconds) => decisions.push(seconds * 1000);
  const start = process.hrtime.bigint();
  await pods.placeWaiting();
  const ms = msSince(start);
  const all = await store.listInstances({});
  const placed = all.filter((i) => i.nodeId !== null);
  return { ms, placed, waiting: all.length - placed.length, decisions };
}

/**
 * The floor: the same rows written through the same store call with no decision: each placed
 * instance's node and GPUs, and each of their pods' final status, in batches of BATCH placements.
 */
async function floorPass(store: Store, placed: readonly Instance[], statuses: ReadonlyMap<PodId, PodPatch>): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < placed.length; i += BATCH) {
    const chunk = placed.slice(i, i + BATCH);
    const last = new Map(chunk.map((inst, j) => [inst.podId, j]));
    const pods = [...last.keys()].filter((id) => placed[i + last.get(id)! + 1]?.podId !== id).map((id) => ({ id, patch: statuses.get(id)! }));
    await store.placeInstances(
      chunk.map((inst) => ({ id: inst.id, podId: inst.podId, nodeId: inst.nodeId!, gpuUuids: inst.gpuUuids })),
      pods,
    );
  }
  return msSince(start);
}

/** GPUs handed out twice, CPUs or memory over a node's capacity: a fast pass that placed wrongly is no pass. */
async function check(store: Store, placed: readonly Instance[]): Promise<string> {
  const nodes = new Map((await store.listNodes()).map((n) => [n.id, n]));
  const seen = new Set<string>();
  const use = new Map<NodeId, { cpus: number; mem: number }>();
  const specs = new Map((await store.listPods({})).map((d) => [d.pod.id, d.spec]));
  for (const inst of placed) {
    for (const u of inst.gpuUuids) {
      if (seen.has(u)) return `GPU ${u} handed out twice`;
      seen.add(u);
    }
    const spec = specs.get(inst.podId)!;
    if (inst.gpuUuids.length !== spec.gpuCount) return `instance ${inst.id} got ${inst.gpuUuids.length} GPUs, asked ${spec.gpuCount}`;
    const u = use.get(inst.nodeId!) ?? { cpus: 0, mem: 0 };
    u.cpus += spec.vcpuCount ?? 0;
    u.mem += (spec.memoryGb ?? 0) * 1024;
    use.set(inst.nodeId!, u);
  }
  for (const [id, u] of use) {
    const n = nodes.get(id)!;
    if (u.cpus > n.capacity.cpus || u.mem > n.capacity.memoryMb) return `node ${n.name} over capacity`;
  }
  return 'ok (no GPU handed out twice, no node over its CPUs or memory)';
}

async function runOn(name: string, open: (dir: string) => Promise<Store>, copy: (from: string, to: string) => Promise<void>, work: string): Promise<[string, string][]> {
  const dirA = join(work, `${name}-a`);
  const dirB = join(work, `${name}-b`);
  await mkdir(dirA, { recursive: true });
  log(`${name}: writing ${NODES} nodes and ${PODS} waiting pods`);
  let store = await open(dirA);
  const t0 = process.hrtime.bigint();
  const instances = await addPods(store);
  await addNodes(store);
  log(`${name}: set-up took ${(msSince(t0) / 1000).toFixed(1)} s (${instances} instances)`);
  await store.close();
  await copy(dirA, dirB);

  store = await open(dirA);
  log(`${name}: placement pass`);
  const pass = await berthPass(store);
  const correct = await check(store, pass.placed);
  const statuses = new Map((await store.listPods({})).map((d) => [d.pod.id, { status: d.pod.status, statusMessage: d.pod.statusMessage, nodeId: d.pod.nodeId } satisfies PodPatch]));
  await store.close();

  const floorStore = await open(dirB);
  log(`${name}: floor (same writes, no decision)`);
  const floorMs = await floorPass(floorStore, pass.placed, statuses);
  await floorStore.close();

  const rate = (pass.placed.length / pass.ms) * 1000;
  const floorRate = (pass.placed.length / floorMs) * 1000;
  return [
    [`${name}: placed`, `${pass.placed.length} of ${instances} instances in ${(pass.ms / 1000).toFixed(2)} s; ${pass.waiting} wait with a reason (the cluster is full for them); ${correct}`],
    [`${name}: one placement decision`, `p50 ${quantile(pass.decisions, 0.5).toFixed(3)} ms  p99 ${quantile(pass.decisions, 0.99).toFixed(3)} ms  max ${Math.max(...pass.decisions).toFixed(2)} ms (${pass.decisions.length} decisions)`],
    [`${name}: floor (same writes, no decision)`, `${floorRate.toFixed(0)} placements/s (${(floorMs / 1000).toFixed(2)} s)`],
    [`${name}: berth/floor`, `${(rate / floorRate).toFixed(2)} (1.00: placing costs nothing over writing)`],
    [`${name}: sustained rate (target ≥ ${TARGET_RATE}/s)`, `${rate.toFixed(0)} placements/s  ${verdict(TARGET_RATE / rate, 1)}`],
  ];
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'berth-bench-sched-'));
  const lines: [string, string][] = [['cluster', `${NODES} nodes (40% CPU-only, the rest 2-8 GPUs of 4 types, 6% mixed), 100 racks, 4 zones; ${PODS} pods, 1 pass`]];
  try {
    lines.push(
      ...(await runOn(
        'SQLite',
        (dir) => openStore({ dataDir: dir }),
        async (from, to) => {
          await mkdir(to, { recursive: true });
          await copyFile(join(from, SQLITE_FILE_NAME), join(to, SQLITE_FILE_NAME));
        },
        work,
      )),
    );
    const pgUrl = process.env.BERTH_BENCH_DATABASE_URL;
    if (pgUrl) {
      // Two schemas filled alike stand for the copy: one for the pass, one for the floor.
      const schemas = new Map<string, { url: string; drop: () => Promise<void> }>();
      const fill = async (dir: string): Promise<Store> => {
        let s = schemas.get(dir);
        if (!s) schemas.set(dir, (s = await postgresSchema(pgUrl)));
        return openStore({ databaseUrl: s.url });
      };
      try {
        lines.push(
          ...(await runOn('PostgreSQL', fill, async (_from, to) => {
            const store = await fill(to);
            await addPods(store);
            await addNodes(store);
            await store.close();
          }, work)),
        );
      } finally {
        for (const s of schemas.values()) await s.drop();
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  summary('scheduler', lines);
}

await main();

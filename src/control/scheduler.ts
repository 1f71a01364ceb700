import { fixedHostPorts, type Constraint, type Gpu, type Instance, type Node, type NodeId, type PodSpec } from '../model/index.js';
import { groupCrowding, meetsConstraints, missingEverywhere } from './constraints.js';

/** What one instance takes from its node while its goal is `running`. */
export interface Reservation {
  cpus: number;
  memoryMb: number;
  gpuUuids: string[];
}

export interface NodeLoad {
  node: Node;
  cpus: number;
  memoryMb: number;
  gpuUuids: Set<string>;
  /** Exact node ports (`port/proto`) the node's instances hold; see fixedHostPorts. */
  hostPorts?: Set<string>;
  /** The agent has not been heard from lately: no new pods go there. */
  stale?: boolean;
  /** Why the node takes no new instances now (cordoned, NOT_READY, silent); absent: it does. Pinned instances ignore it. */
  unschedulable?: string;
}

/** An agent watches at least every 25 s; three missed calls and its node takes no new pods. */
export const NODE_STALE_MS = 90_000;

export type Placement = { ok: true; nodeId: NodeId; gpus: Gpu[] } | { ok: false; reason: string };

export const reservationOf = (spec: PodSpec, gpuUuids: string[]): Reservation => ({
  cpus: spec.vcpuCount ?? 0,
  memoryMb: Math.round((spec.memoryGb ?? 0) * 1024),
  gpuUuids,
});

/** Sums what running instances hold on each node. `specs` gives each instance's spec by pod id. */
export function nodeLoads(nodes: Node[], instances: Instance[], specOf: (i: Instance) => PodSpec | undefined, now = Date.now()): Map<NodeId, NodeLoad> {
  const loads = new Map<NodeId, NodeLoad>();
  for (const node of nodes) {
    const stale = now - Date.parse(node.lastSeenAt) > NODE_STALE_MS;
    const load: NodeLoad = { node, cpus: 0, memoryMb: 0, gpuUuids: new Set(), hostPorts: new Set(), stale };
    const why = unschedulableReason(node, stale);
    if (why) load.unschedulable = why;
    loads.set(node.id, load);
  }
  for (const inst of instances) {
    if (inst.goal !== 'running' || !inst.nodeId) continue;
    const load = loads.get(inst.nodeId);
    const spec = specOf(inst);
    if (!load || !spec) continue;
    reserve(load, spec, inst.gpuUuids);
  }
  return loads;
}

/** Why a node takes no new instances, or undefined when it does. */
export function unschedulableReason(node: Node, stale = false): string | undefined {
  if (node.cordoned) return 'cordoned';
  if (node.notReadySince) return `NOT_READY since ${node.notReadySince} (its agent is not answering)`;
  if (stale) return `its agent has not been heard from since ${node.lastSeenAt}`;
  return undefined;
}

/** Counts what one more instance of the spec takes on the node. */
export function reserve(load: NodeLoad, spec: PodSpec, gpuUuids: string[]): void {
  const r = reservationOf(spec, gpuUuids);
  load.cpus += r.cpus;
  load.memoryMb += r.memoryMb;
  for (const u of r.gpuUuids) load.gpuUuids.add(u);
  const ports = fixedHostPorts(spec);
  if (ports.length > 0) {
    load.hostPorts ??= new Set();
    for (const p of ports) load.hostPorts.add(p);
  }
}

/** Why a node cannot take the spec, or the GPUs it would hand out. */
export function fit(load: NodeLoad, spec: PodSpec, gpuCount = spec.gpuCount): { gpus: Gpu[] } | { reason: string } {
  const { node } = load;
  const need = reservationOf(spec, []);
  if (need.cpus > 0 && load.cpus + need.cpus > node.capacity.cpus) {
    return { reason: `${node.name}: needs ${need.cpus} vCPU, ${Math.max(0, node.capacity.cpus - load.cpus)} of ${node.capacity.cpus} free` };
  }
  if (need.memoryMb > 0 && load.memoryMb + need.memoryMb > node.capacity.memoryMb) {
    const free = Math.max(0, node.capacity.memoryMb - load.memoryMb);
    return { reason: `${node.name}: needs ${(need.memoryMb / 1024).toFixed(1)} GB memory, ${(free / 1024).toFixed(1)} GB free` };
  }
  const taken = load.hostPorts ? fixedHostPorts(spec).filter((p) => load.hostPorts!.has(p)) : [];
  if (taken.length > 0) {
    return { reason: `${node.name}: host port${taken.length === 1 ? '' : 's'} ${taken.join(', ')} already taken by another instance` };
  }
  if (gpuCount === 0) return { gpus: [] };
  const wanted = spec.gpuTypeIds;
  const free = node.capacity.gpus.filter((g) => !load.gpuUuids.has(g.uuid));
  // Prefer types in the order the user listed them, as RunPod's gpuTypePriority "custom".
  const candidates = wanted.length === 0 ? [free] : wanted.map((t) => free.filter((g) => g.name === t));
  for (const group of candidates) {
    if (group.length >= gpuCount) return { gpus: group.slice(0, gpuCount) };
  }
  const types = wanted.length ? wanted.join(' or ') : 'any type';
  return { reason: `${node.name}: needs ${gpuCount} GPU (${types}), ${free.length} free of ${node.capacity.gpus.length}` };
}

/**
 * Clusters up to this many nodes are searched whole, in the loads' order, so a small cluster places
 * exactly as an exhaustive search does. Kubernetes scores every node up to 100 too.
 */
export const SEARCH_ALL_UP_TO = 100;

/**
 * How many nodes that can take the pod a placement compares, in a list of `n` candidates: all up to
 * SEARCH_ALL_UP_TO, and as many beyond (2% of 5,000 nodes). The best of 100 nodes that fit, taken
 * round the cluster, packs GPUs nearly as tightly as the best of all, at a bounded cost per
 * placement. Kubernetes compares at least 100 too (`percentageOfNodesToScore`, 10% of 5,000 by
 * default); Nomad compares log2(n), 13 of 5,000, for a service job and 2 for a batch job.
 */
export const nodesToCompare = (n: number): number => Math.min(n, SEARCH_ALL_UP_TO);

/** Reasons named one node at a time in a refusal; past this many the rest are counted. */
export const MAX_NODE_REASONS = 20;

/**
 * Picks a node for one instance: the node with the fewest free GPUs that still fits (GPU pods pack,
 * leaving whole machines free), then the least loaded CPU. `pinned` restricts to one node (a stopped
 * pod whose volume disk lives there). `peers` are the nodes of the pod's other active instances,
 * oldest first, one entry per instance: the spec's Marathon constraints are judged against them
 * (see constraints.ts), and a node that breaks one is skipped with the reason. Among nodes that keep
 * them, those whose GROUP_BY values hold the fewest peers come first, so GROUP_BY really spreads.
 *
 * Cost: only nodes that could hold the pod's GPUs are walked (an index by GPU type, kept per loads
 * map), each with a check that builds nothing; in a cluster past SEARCH_ALL_UP_TO nodes the walk
 * stops once nodesToCompare of them can take the pod, starting where the previous placement
 * stopped (Kubernetes' round-robin start; Nomad limits its walk the same way). The refusal's
 * reason is built only when no node fits, by a second, complete walk.
 */
export function place(loads: Map<NodeId, NodeLoad>, spec: PodSpec, pinned?: NodeId | null, gpuCount = spec.gpuCount, peers: NodeId[] = []): Placement {
  // Specs stored before constraints existed have none.
  const constraints = spec.constraints ?? [];
  // A peer on a node that is no longer registered has no field values to compare with.
  const peerNodes = peers.flatMap((id) => loads.get(id)?.node ?? []);
  if (pinned) return placePinned(loads, spec, pinned, gpuCount, constraints, peerNodes);
  const need = needOf(spec, gpuCount);
  const index = indexOf(loads);
  const list = gpuCount === 0 ? index.all : need.types.length === 1 ? (index.byType.get(need.types[0]!) ?? []) : index.gpu;
  const whole = loads.size <= SEARCH_ALL_UP_TO;
  const enough = whole ? list.length : nodesToCompare(list.length);
  const from = whole || list.length === 0 ? 0 : index.cursor % list.length;
  let best: { load: NodeLoad; rank0: number; rank1: number } | undefined;
  let found = 0;
  let walked = 0;
  for (; walked < list.length && found < enough; walked++) {
    const load = list[(from + walked) % list.length]!;
    if (load.stale || load.unschedulable || !admits(load, need)) continue;
    if (constraints.length > 0 && meetsConstraints(load.node, constraints, peerNodes) !== null) continue;
    found++;
    const rank0 = constraints.length > 0 ? groupCrowding(load.node, constraints, peerNodes) : 0;
    const rank1 = score(load);
    if (!best || rank0 < best.rank0 || (rank0 === best.rank0 && rank1 < best.rank1)) best = { load, rank0, rank1 };
  }
  if (!whole) index.cursor = from + walked;
  if (best) {
    const r = fit(best.load, spec, gpuCount);
    if ('gpus' in r) return { ok: true, nodeId: best.load.node.id, gpus: r.gpus };
  }
  return refusal(loads, spec, gpuCount, constraints, peerNodes);
}

/** A stopped pod's start: its node or nothing; stale and unschedulable do not apply, its volume disk is there. */
function placePinned(loads: Map<NodeId, NodeLoad>, spec: PodSpec, pinned: NodeId, gpuCount: number, constraints: readonly Constraint[], peerNodes: readonly Node[]): Placement {
  const load = loads.get(pinned);
  if (!load) return { ok: false, reason: loads.size === 0 ? 'no node has registered yet' : `the pod's node ${pinned} is not registered` };
  const broken = constraints.length > 0 ? meetsConstraints(load.node, constraints, peerNodes) : null;
  if (broken) return { ok: false, reason: broken };
  const r = fit(load, spec, gpuCount);
  return 'reason' in r ? { ok: false, reason: r.reason } : { ok: true, nodeId: pinned, gpus: r.gpus };
}

/** Why no node takes the pod: one clause per node (the first MAX_NODE_REASONS), or one for the cluster. */
function refusal(loads: Map<NodeId, NodeLoad>, spec: PodSpec, gpuCount: number, constraints: readonly Constraint[], peerNodes: readonly Node[]): Placement {
  if (loads.size === 0) return { ok: false, reason: 'no node has registered yet' };
  if (constraints.length > 0) {
    const missing = missingEverywhere([...loads.values()].map((l) => l.node), constraints);
    if (missing) return { ok: false, reason: missing };
  }
  const reasons: string[] = [];
  let more = 0;
  for (const load of loads.values()) {
    if (reasons.length >= MAX_NODE_REASONS) {
      more++;
      continue;
    }
    // Cordoned, NOT_READY, or silent (unschedulableReason).
    if (load.unschedulable) {
      reasons.push(`${load.node.name}: ${load.unschedulable}`);
      continue;
    }
    const broken = constraints.length > 0 ? meetsConstraints(load.node, constraints, peerNodes) : null;
    if (broken) {
      reasons.push(broken);
      continue;
    }
    const r = fit(load, spec, gpuCount);
    if ('reason' in r) reasons.push(r.reason);
  }
  if (more > 0) reasons.push(`and ${more} more node${more === 1 ? '' : 's'}`);
  return { ok: false, reason: reasons.join('; ') };
}

/** What a placement asks of a node, worked out once per placement rather than once per node. */
interface Need {
  cpus: number;
  memoryMb: number;
  ports: readonly string[];
  gpus: number;
  types: readonly string[];
}

function needOf(spec: PodSpec, gpuCount: number): Need {
  const r = reservationOf(spec, []);
  return { cpus: r.cpus, memoryMb: r.memoryMb, ports: fixedHostPorts(spec), gpus: gpuCount, types: spec.gpuTypeIds };
}

/** fit's verdict without its reason or its GPU list: the per-node check of a placement's walk. */
function admits(load: NodeLoad, need: Need): boolean {
  const cap = load.node.capacity;
  if (need.cpus > 0 && load.cpus + need.cpus > cap.cpus) return false;
  if (need.memoryMb > 0 && load.memoryMb + need.memoryMb > cap.memoryMb) return false;
  if (load.hostPorts && need.ports.length > 0) for (const p of need.ports) if (load.hostPorts.has(p)) return false;
  if (need.gpus === 0) return true;
  if (need.types.length === 0) return freeGpus(load, undefined) >= need.gpus;
  for (const t of need.types) if (freeGpus(load, t) >= need.gpus) return true;
  return false;
}

function freeGpus(load: NodeLoad, type: string | undefined): number {
  let n = 0;
  for (const g of load.node.capacity.gpus) if ((type === undefined || g.name === type) && !load.gpuUuids.has(g.uuid)) n++;
  return n;
}

/**
 * The loads of one map in a fixed order, with the nodes that have GPUs and those of each GPU type,
 * and where the last walk stopped. Kept per map, as long as its node count does not change: a
 * caller reserves into the same loads between placements, which changes no node's GPUs.
 */
interface LoadIndex {
  size: number;
  all: NodeLoad[];
  gpu: NodeLoad[];
  byType: Map<string, NodeLoad[]>;
  cursor: number;
}

const indexes = new WeakMap<Map<NodeId, NodeLoad>, LoadIndex>();

function indexOf(loads: Map<NodeId, NodeLoad>): LoadIndex {
  const known = indexes.get(loads);
  if (known && known.size === loads.size) return known;
  const index: LoadIndex = { size: loads.size, all: [...loads.values()], gpu: [], byType: new Map(), cursor: 0 };
  for (const load of index.all) {
    if (load.node.capacity.gpus.length > 0) index.gpu.push(load);
    for (const type of new Set(load.node.capacity.gpus.map((g) => g.name))) {
      let list = index.byType.get(type);
      if (!list) index.byType.set(type, (list = []));
      list.push(load);
    }
  }
  indexes.set(loads, index);
  return index;
}
function score(load: NodeLoad): number {
  const freeGpus = load.node.capacity.gpus.length - load.gpuUuids.size;
  const cpuShare = load.node.capacity.cpus > 0 ? load.cpus / load.node.capacity.cpus : 0;
  return freeGpus * 1000 + cpuShare;
}

import { fixedHostPorts, type Gpu, type Instance, type Node, type NodeId, type PodSpec } from '../model/index.js';
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
 * Picks a node for one instance: the node with the fewest free GPUs that still fits (GPU pods pack,
 * leaving whole machines free), then the least loaded CPU. `pinned` restricts to one node (a stopped
 * pod whose volume disk lives there). `peers` are the nodes of the pod's other active instances,
 * oldest first, one entry per instance: the spec's Marathon constraints are judged against them
 * (see constraints.ts), and a node that breaks one is skipped with the reason. Among nodes that keep
 * them, those whose GROUP_BY values hold the fewest peers come first, so GROUP_BY really spreads.
 */
export function place(loads: Map<NodeId, NodeLoad>, spec: PodSpec, pinned?: NodeId | null, gpuCount = spec.gpuCount, peers: NodeId[] = []): Placement {
  // Specs stored before constraints existed have none.
  const constraints = spec.constraints ?? [];
  // A peer on a node that is no longer registered has no field values to compare with.
  const peerNodes = peers.flatMap((id) => loads.get(id)?.node ?? []);
  if (!pinned && constraints.length > 0) {
    const missing = missingEverywhere([...loads.values()].map((l) => l.node), constraints);
    if (missing) return { ok: false, reason: missing };
  }
  const reasons: string[] = [];
  let best: { load: NodeLoad; gpus: Gpu[]; rank: [number, number] } | undefined;
  for (const load of loads.values()) {
    if (pinned && load.node.id !== pinned) continue;
    if (!pinned && load.unschedulable) {
      reasons.push(`${load.node.name}: ${load.unschedulable}`);
      continue;
    }
    const broken = constraints.length > 0 ? meetsConstraints(load.node, constraints, peerNodes) : null;
    if (broken) {
      reasons.push(broken);
      continue;
    }
    const r = fit(load, spec, gpuCount);
    if ('reason' in r) {
      reasons.push(r.reason);
      continue;
    }
    const rank: [number, number] = [constraints.length > 0 ? groupCrowding(load.node, constraints, peerNodes) : 0, score(load)];
    if (!best || rank[0] < best.rank[0] || (rank[0] === best.rank[0] && rank[1] < best.rank[1])) best = { load, gpus: r.gpus, rank };
  }
  if (best) return { ok: true, nodeId: best.load.node.id, gpus: best.gpus };
  if (loads.size === 0) return { ok: false, reason: 'no node has registered yet' };
  if (pinned && !loads.has(pinned)) return { ok: false, reason: `the pod's node ${pinned} is not registered` };
  return { ok: false, reason: reasons.join('; ') };
}

function score(load: NodeLoad): number {
  const freeGpus = load.node.capacity.gpus.length - load.gpuUuids.size;
  const cpuShare = load.node.capacity.cpus > 0 ? load.cpus / load.node.capacity.cpus : 0;
  return freeGpus * 1000 + cpuShare;
}

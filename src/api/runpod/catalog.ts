/**
 * RunPod REST v2's catalog from what Berth's nodes report: GPU types from their inventories, CPU
 * flavours sized to the largest node, data centers from their `berth.io/datacenter` labels.
 */
import type { Instance, Node } from '../../model/index.js';
import { displayName } from './views.js';
import { CPU_FLAVORS, dataCenterOf, dataCenters, type CompiledRunpodOptions } from './shared.js';

type Availability = 'NONE' | 'LOW' | 'MEDIUM' | 'HIGH';

/** Free units → RunPod's stock levels: none free, fewer than the count asked, a few, plenty. */
function level(free: number, want: number): Availability {
  if (free < Math.max(1, want)) return 'NONE';
  if (free < 2 * want) return 'LOW';
  if (free < 4 * want) return 'MEDIUM';
  return 'HIGH';
}

export interface CatalogState {
  nodes: Node[];
  /** Instances whose goal is running: what holds GPUs and vCPUs now. */
  running: Instance[];
  /** vCPUs reserved per node. */
  cpusUsed: Map<string, number>;
}

const manufacturer = (name: string): 'NVIDIA' | 'AMD' | 'UNKNOWN' => (/nvidia|geforce|tesla|quadro|rtx/i.test(name) ? 'NVIDIA' : /amd|instinct|radeon/i.test(name) ? 'AMD' : 'UNKNOWN');

export interface GpuQuery {
  availability: boolean;
  count: number;
}

/** One entry per GPU type (nvidia-smi's name is the id, as RunPod's ids are). */
export function gpuTypes(s: CatalogState, opts: CompiledRunpodOptions, q: GpuQuery) {
  const used = new Set(s.running.flatMap((i) => i.gpuUuids));
  const types = new Map<string, { memoryMb: number; perNode: Map<string, { total: number; free: number }>; simulated: boolean }>();
  for (const node of s.nodes) {
    for (const g of node.capacity.gpus) {
      const t = types.get(g.name) ?? { memoryMb: g.memoryMb, perNode: new Map(), simulated: false };
      const n = t.perNode.get(node.id) ?? { total: 0, free: 0 };
      n.total++;
      if (!used.has(g.uuid)) n.free++;
      t.perNode.set(node.id, n);
      t.simulated ||= node.capacity.gpusSimulated;
      types.set(g.name, t);
    }
  }
  const byId = new Map(s.nodes.map((n) => [n.id as string, n]));
  return [...types].map(([id, t]) => {
    const nodes = [...t.perNode];
    // A pod runs on one node: what matters is the most free on any one node, per data center.
    const perDc = new Map<string, number>();
    const sizes = new Map<string, number>();
    for (const [nodeId, n] of nodes) {
      const dc = dataCenterOf(byId.get(nodeId))!;
      perDc.set(dc, Math.max(perDc.get(dc) ?? 0, n.free));
      sizes.set(dc, Math.max(sizes.get(dc) ?? 0, n.total));
    }
    const best = Math.max(0, ...perDc.values());
    return {
      id,
      name: displayName(id),
      pool: null,
      manufacturer: manufacturer(id),
      memory: Math.round(t.memoryMb / 1024),
      secure: true,
      community: false,
      price: { secure: opts.costPerGpuHour, community: opts.costPerGpuHour },
      maxCount: { secure: Math.max(...nodes.map(([, n]) => n.total)), community: 0 },
      ...(q.availability
        ? {
            availability: level(best, q.count),
            // The data centers with a node big enough for the count, however busy it is now.
            dataCenters: [...perDc].filter(([dc]) => (sizes.get(dc) ?? 0) >= q.count).map(([dc, free]) => ({ id: dc, name: dc, availability: level(free, q.count) })),
          }
        : {}),
      ...(t.simulated ? { simulated: true } : {}),
    };
  });
}

const largestPowerOfTwo = (n: number): number => (n < 2 ? 2 : 2 ** Math.floor(Math.log2(n)));

/** Free vCPUs on the emptiest node of each data center. */
function freeCpusPerDc(s: CatalogState): Map<string, number> {
  const perDc = new Map<string, number>();
  for (const node of s.nodes) {
    const dc = dataCenterOf(node)!;
    const free = node.capacity.cpus - (s.cpusUsed.get(node.id) ?? 0);
    perDc.set(dc, Math.max(perDc.get(dc) ?? 0, free));
  }
  return perDc;
}

export function cpuTypes(s: CatalogState, opts: CompiledRunpodOptions, q: { availability: boolean; vcpuCount: number }) {
  const max = largestPowerOfTwo(Math.max(0, ...s.nodes.map((n) => n.capacity.cpus)));
  const perDc = freeCpusPerDc(s);
  const best = Math.max(0, ...perDc.values());
  return CPU_FLAVORS.map((f) => ({
    id: f.id,
    name: f.name,
    group: 'Berth node CPU',
    vcpu: { min: 2, max },
    ramGbPerVcpu: f.ramGbPerVcpu,
    price: { securePerVcpu: opts.costPerVcpuHour, serverlessPerVcpu: opts.costPerVcpuHour },
    ...(q.availability
      ? {
          availability: level(best, q.vcpuCount),
          dataCenters: [...perDc].filter(([, free]) => free >= q.vcpuCount).map(([dc, free]) => ({ id: dc, name: dc, availability: level(free, q.vcpuCount) })),
        }
      : {}),
  }));
}

export function dataCenterList(s: CatalogState, opts: CompiledRunpodOptions, include: string[]) {
  const gpus = include.includes('GPU_AVAILABILITY') ? gpuTypes(s, opts, { availability: true, count: 1 }) : [];
  const cpus = include.includes('CPU_AVAILABILITY') ? cpuTypes(s, opts, { availability: true, vcpuCount: 2 }) : [];
  return dataCenters(s.nodes).map((id) => {
    const here = (list: { id: string; name: string; dataCenters?: { id: string; availability: Availability }[] }[]) =>
      list.flatMap((t) => {
        const a = t.dataCenters?.find((d) => d.id === id);
        return a ? [{ id: t.id, name: t.name, availability: a.availability }] : [];
      });
    const gpuHere = here(gpus);
    const cpuHere = here(cpus);
    return {
      id,
      name: id,
      region: 'UNKNOWN' as const,
      globalNetwork: false,
      networkVolumeTypes: ['STANDARD'],
      compliance: [] as string[],
      ...(gpuHere.length ? { gpuAvailability: gpuHere } : {}),
      ...(cpuHere.length ? { cpuAvailability: cpuHere } : {}),
    };
  });
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePodSpec, instanceIdOf, type Gpu, type Instance, type Node, type NodeId, type PodId, type PodInput, type PodSpec } from '../model/index.js';
import { fit, nodeLoads, place, reservationOf, type NodeLoad } from './scheduler.js';

const A100 = 'NVIDIA A100 80GB PCIe';
const RTX = 'NVIDIA GeForce RTX 4090';

function gpus(name: string, count: number, prefix = name): Gpu[] {
  return Array.from({ length: count }, (_, i) => ({ index: i, uuid: `GPU-${prefix}-${i}`.replace(/\s+/g, '_'), name, memoryMb: 81920 }));
}

function node(name: string, cpus: number, memoryGb: number, gpuList: Gpu[] = []): Node {
  return {
    id: `id-${name}` as NodeId,
    name,
    publicIp: '10.0.0.1',
    labels: {},
    capacity: { cpus, memoryMb: memoryGb * 1024, gpus: gpuList, gpusSimulated: true },
    agentVersion: 'test',
    registeredAt: '2024-01-01T00:00:00.000Z',
    lastSeenAt: '2024-01-01T00:00:00.000Z',
    revision: 1,
  };
}

/** A node's load with `cpus`, `memoryGb` and the given GPUs already taken. */
function load(n: Node, used: { cpus?: number; memoryGb?: number; gpuUuids?: string[] } = {}): NodeLoad {
  return { node: n, cpus: used.cpus ?? 0, memoryMb: (used.memoryGb ?? 0) * 1024, gpuUuids: new Set(used.gpuUuids ?? []) };
}

const loadsOf = (...ls: NodeLoad[]): Map<NodeId, NodeLoad> => new Map(ls.map((l) => [l.node.id, l]));
const spec = (input: Omit<PodInput, 'image'> = {}): PodSpec => compilePodSpec({ image: 'busybox', ...input });

describe('fit', () => {
  it('fits a pod with no reservation anywhere, even on a full node', () => {
    const n = node('tiny', 1, 1);
    assert.deepEqual(fit(load(n, { cpus: 1, memoryGb: 1 }), spec()), { gpus: [] });
  });

  it('refuses when the CPUs left are too few and says how many are free', () => {
    const r = fit(load(node('n1', 8, 64), { cpus: 6.5 }), spec({ vcpuCount: 2 }));
    assert.deepEqual(r, { reason: 'n1: needs 2 vCPU, 1.5 of 8 free' });
    assert.ok('gpus' in fit(load(node('n1', 8, 64), { cpus: 6 }), spec({ vcpuCount: 2 })), 'exactly full fits');
  });

  it('refuses when memory is short and says in GB how much is free', () => {
    const r = fit(load(node('n1', 8, 16), { memoryGb: 12 }), spec({ memoryGb: 8 }));
    assert.deepEqual(r, { reason: 'n1: needs 8.0 GB memory, 4.0 GB free' });
    assert.ok('gpus' in fit(load(node('n1', 8, 16), { memoryGb: 8 }), spec({ memoryGb: 8 })));
  });

  it('reports no negative free amounts on an overcommitted node', () => {
    const r = fit(load(node('n1', 4, 4), { cpus: 6, memoryGb: 1 }), spec({ vcpuCount: 1 }));
    assert.deepEqual(r, { reason: 'n1: needs 1 vCPU, 0 of 4 free' });
  });

  it('hands out free GPUs of any type when none is asked for, skipping those in use', () => {
    const n = node('g', 32, 256, gpus(A100, 4));
    const r = fit(load(n, { gpuUuids: [n.capacity.gpus[0]!.uuid, n.capacity.gpus[2]!.uuid] }), spec({ gpuCount: 2 }));
    assert.ok('gpus' in r);
    assert.deepEqual(r.gpus.map((g) => g.index), [1, 3]);
  });

  it('takes the first listed GPU type that has enough free, in the user\'s order', () => {
    const n = node('mixed', 32, 256, [...gpus(A100, 2), ...gpus(RTX, 2)]);
    const rtxFirst = fit(load(n), spec({ gpuCount: 2, gpuTypeIds: [RTX, A100] }));
    assert.ok('gpus' in rtxFirst);
    assert.deepEqual(rtxFirst.gpus.map((g) => g.name), [RTX, RTX]);

    const a100First = fit(load(n), spec({ gpuCount: 1, gpuTypeIds: [A100, RTX] }));
    assert.ok('gpus' in a100First);
    assert.deepEqual(a100First.gpus.map((g) => g.name), [A100]);

    // One RTX in use: the preferred type is short, so the next one in the list is used.
    const fallback = fit(load(n, { gpuUuids: [gpus(RTX, 1)[0]!.uuid] }), spec({ gpuCount: 2, gpuTypeIds: [RTX, A100] }));
    assert.ok('gpus' in fallback);
    assert.deepEqual(fallback.gpus.map((g) => g.name), [A100, A100]);
  });

  it('never mixes GPU types in one pod', () => {
    const n = node('mixed', 32, 256, [...gpus(A100, 2), ...gpus(RTX, 2)]);
    const r = fit(load(n), spec({ gpuCount: 3, gpuTypeIds: [RTX, A100] }));
    assert.deepEqual(r, { reason: `mixed: needs 3 GPU (${RTX} or ${A100}), 4 free of 4` });
  });

  it('ignores GPUs of types not listed', () => {
    const n = node('g', 32, 256, gpus(A100, 8));
    assert.deepEqual(fit(load(n), spec({ gpuCount: 1, gpuTypeIds: [RTX] })), { reason: `g: needs 1 GPU (${RTX}), 8 free of 8` });
  });

  it('says how many GPUs are free when too few are', () => {
    const n = node('g', 32, 256, gpus(A100, 4));
    const used = n.capacity.gpus.slice(0, 3).map((g) => g.uuid);
    assert.deepEqual(fit(load(n, { gpuUuids: used }), spec({ gpuCount: 2 })), { reason: 'g: needs 2 GPU (any type), 1 free of 4' });
  });

  it('takes a GPU count that overrides the spec\'s (start with 0 GPUs)', () => {
    const n = node('g', 32, 256, gpus(A100, 1));
    const full = load(n, { gpuUuids: [n.capacity.gpus[0]!.uuid] });
    assert.ok('reason' in fit(full, spec({ gpuCount: 1 })));
    assert.deepEqual(fit(full, spec({ gpuCount: 1 }), 0), { gpus: [] });
  });

  it('checks CPU and memory before GPUs', () => {
    const n = node('g', 4, 256, gpus(A100, 1));
    const r = fit(load(n), spec({ gpuCount: 2, vcpuCount: 8 }));
    assert.ok('reason' in r);
    assert.match(r.reason, /vCPU/);
  });
});

describe('place', () => {
  it('says no node has registered when there are none', () => {
    assert.deepEqual(place(new Map(), spec()), { ok: false, reason: 'no node has registered yet' });
    assert.deepEqual(place(new Map(), spec(), 'id-gone' as NodeId), { ok: false, reason: 'no node has registered yet' });
  });

  it('joins every node\'s reason when none fits', () => {
    const r = place(loadsOf(load(node('a', 2, 8)), load(node('b', 16, 4))), spec({ vcpuCount: 4, memoryGb: 6 }));
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.reason, 'a: needs 4 vCPU, 2 of 2 free; b: needs 6.0 GB memory, 4.0 GB free');
  });

  it('keeps to the pinned node even when another would fit better', () => {
    const full = node('full', 32, 256, gpus(A100, 8, 'full'));
    const empty = node('empty', 32, 256, gpus(A100, 8, 'empty'));
    const loads = loadsOf(load(full, { gpuUuids: full.capacity.gpus.slice(0, 7).map((g) => g.uuid) }), load(empty));
    const r = place(loads, spec({ gpuCount: 1 }), empty.id);
    assert.ok(r.ok);
    assert.equal(r.nodeId, empty.id);

    const r2 = place(loads, spec({ gpuCount: 2 }), full.id);
    assert.deepEqual(r2, { ok: false, reason: 'full: needs 2 GPU (any type), 1 free of 8' });
  });

  it('says when the pinned node is not registered', () => {
    const r = place(loadsOf(load(node('a', 8, 8))), spec(), 'id-gone' as NodeId);
    assert.deepEqual(r, { ok: false, reason: "the pod's node id-gone is not registered" });
  });

  it('packs GPU pods onto the node with the fewest free GPUs', () => {
    const a = node('a', 64, 512, gpus(A100, 8, 'a'));
    const b = node('b', 64, 512, gpus(A100, 8, 'b'));
    const c = node('c', 64, 512, gpus(A100, 8, 'c'));
    const loads = loadsOf(load(a), load(b, { gpuUuids: b.capacity.gpus.slice(0, 6).map((g) => g.uuid) }), load(c, { gpuUuids: c.capacity.gpus.slice(0, 7).map((g) => g.uuid) }));
    const one = place(loads, spec({ gpuCount: 1 }));
    assert.ok(one.ok);
    assert.equal(one.nodeId, c.id, 'c has 1 free: the tightest fit');
    assert.deepEqual(one.gpus.map((g) => g.uuid), [c.capacity.gpus[7]!.uuid]);

    const two = place(loads, spec({ gpuCount: 2 }));
    assert.ok(two.ok);
    assert.equal(two.nodeId, b.id, 'c is too small for 2; b has 2 free');
  });

  it('keeps CPU-only pods off GPU machines when a CPU machine fits', () => {
    const gpuNode = node('gpu', 64, 512, gpus(A100, 8));
    const cpuNode = node('cpu', 8, 32);
    const r = place(loadsOf(load(gpuNode), load(cpuNode, { cpus: 7 })), spec({ vcpuCount: 1 }));
    assert.ok(r.ok);
    assert.equal(r.nodeId, cpuNode.id);
    assert.deepEqual(r.gpus, []);
  });

  it('between equal GPU counts, picks the node with the smaller share of its CPUs taken', () => {
    const busy = node('busy', 16, 64);
    const idle = node('idle', 16, 64);
    const r = place(loadsOf(load(busy, { cpus: 12 }), load(idle, { cpus: 2 })), spec({ vcpuCount: 2 }));
    assert.ok(r.ok);
    assert.equal(r.nodeId, idle.id);
  });

  it('places with a GPU count that overrides the spec\'s', () => {
    const n = node('g', 32, 256, gpus(A100, 1));
    const r = place(loadsOf(load(n, { gpuUuids: [n.capacity.gpus[0]!.uuid] })), spec({ gpuCount: 1 }), n.id, 0);
    assert.deepEqual(r, { ok: true, nodeId: n.id, gpus: [] });
  });
});

describe('nodeLoads', () => {
  const pod = (i: number) => `pod${String(i).padStart(11, '0')}` as PodId;
  function inst(podId: PodId, nodeId: NodeId | null, goal: Instance['goal'], gpuUuids: string[] = []): Instance {
    return { id: instanceIdOf(podId, 0), podId, ordinal: 0, nodeId, specVersion: 1, goal, resetGeneration: 0, restartGeneration: 0, gpuUuids, hostPorts: {}, observed: null, revision: 1 };
  }

  it('sums what running instances reserve, per node, and ignores the rest', () => {
    const a = node('a', 16, 64, gpus(A100, 4, 'a'));
    const b = node('b', 16, 64);
    const specs = new Map<string, PodSpec>([
      [pod(1), spec({ vcpuCount: 2, memoryGb: 1.5, gpuCount: 2 })],
      [pod(2), spec({ vcpuCount: 1 })],
      [pod(3), spec({ vcpuCount: 4, memoryGb: 4 })],
      [pod(4), spec({ vcpuCount: 8 })],
      [pod(5), spec({ memoryGb: 2 })],
    ]);
    const instances = [
      inst(pod(1), a.id, 'running', ['GPU-a-0', 'GPU-a-1']),
      inst(pod(2), a.id, 'running'),
      inst(pod(3), a.id, 'stopped'),
      inst(pod(4), null, 'running'),
      inst(pod(5), b.id, 'running'),
      inst(pod(6), b.id, 'running'),
    ];
    const loads = nodeLoads([a, b], instances, (i) => specs.get(i.podId));
    const la = loads.get(a.id)!;
    assert.equal(la.cpus, 3);
    assert.equal(la.memoryMb, 1536);
    assert.deepEqual([...la.gpuUuids].sort(), ['GPU-a-0', 'GPU-a-1']);
    const lb = loads.get(b.id)!;
    assert.equal(lb.cpus, 0, 'an instance with no known spec reserves nothing');
    assert.equal(lb.memoryMb, 2048);
    assert.equal(loads.size, 2);
  });

  it('reservationOf rounds memory to MB and treats no limit as zero', () => {
    assert.deepEqual(reservationOf(spec({ vcpuCount: 0.5, memoryGb: 0.1 }), ['GPU-x']), { cpus: 0.5, memoryMb: 102, gpuUuids: ['GPU-x'] });
    assert.deepEqual(reservationOf(spec(), []), { cpus: 0, memoryMb: 0, gpuUuids: [] });
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePodSpec, instanceIdOf, type Gpu, type Instance, type Node, type NodeId, type PodId, type PodInput, type PodSpec } from '../model/index.js';
import { fit, nodeLoads, place, reservationOf, reserve, type NodeLoad } from './scheduler.js';

const A100 = 'NVIDIA A100 80GB PCIe';
const RTX = 'NVIDIA GeForce RTX 4090';

function gpus(name: string, count: number, prefix = name): Gpu[] {
  return Array.from({ length: count }, (_, i) => ({ index: i, uuid: `GPU-${prefix}-${i}`.replace(/\s+/g, '_'), name, memoryMb: 81920 }));
}

function node(name: string, cpus: number, memoryGb: number, gpuList: Gpu[] = [], labels: Record<string, string> = {}): Node {
  return {
    id: `id-${name}` as NodeId,
    name,
    publicIp: '10.0.0.1',
    labels,
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

/** A spec with one container whose endpoint asks for exactly `hostPort` on the node. */
function withHostPort(hostPort: number, protocols: string[] = ['tcp']): PodSpec {
  const base = spec();
  const c = base.containers[0]!;
  return { ...base, containers: [{ ...c, endpoints: [{ name: 'ep', containerPort: 80, hostPort, protocols, labels: {} }] }] };
}

describe('fixed host ports', () => {
  it('keeps a second instance asking for the same host port off the node, and says which port', () => {
    const n = load(node('n1', 8, 64));
    assert.ok('gpus' in fit(n, withHostPort(8080)));
    reserve(n, withHostPort(8080), []);
    const r = fit(n, withHostPort(8080));
    assert.ok('reason' in r && r.reason === 'n1: host port 8080/tcp already taken by another instance', JSON.stringify(r));
    assert.ok('gpus' in fit(n, withHostPort(8081)), 'another port fits');
    assert.ok('gpus' in fit(n, withHostPort(8080, ['udp'])), 'the same number over UDP fits');
    assert.ok('gpus' in fit(n, withHostPort(0)), 'any free port fits');
  });

  it('places on another node where the port is free, and waits with the reason where none has it', () => {
    const [a, b] = [load(node('a', 8, 64)), load(node('b', 8, 64))];
    const loads = loadsOf(a, b);
    const first = place(loads, withHostPort(9000));
    assert.ok(first.ok);
    reserve(loads.get(first.nodeId)!, withHostPort(9000), []);
    const second = place(loads, withHostPort(9000));
    assert.ok(second.ok && second.nodeId !== first.nodeId);
    reserve(loads.get(second.nodeId)!, withHostPort(9000), []);
    const third = place(loads, withHostPort(9000));
    assert.ok(!third.ok && /a: host port 9000\/tcp already taken/.test(third.reason) && /b: host port 9000\/tcp/.test(third.reason), JSON.stringify(third));
  });

  it('counts the ports of running instances when loads are summed', () => {
    const n = node('n1', 8, 64);
    const podId = 'p0000000000001' as PodId;
    const inst = { id: instanceIdOf(podId, 0), podId, ordinal: 0, nodeId: n.id, specVersion: 1, goal: 'running', resetGeneration: 0, restartGeneration: 0, gpuUuids: [], hostPorts: {}, observed: null, revision: 1 } as Instance;
    const loads = nodeLoads([n], [inst], () => withHostPort(7000), Date.parse(n.lastSeenAt));
    assert.deepEqual([...(loads.get(n.id)!.hostPorts ?? [])], ['7000/tcp']);
  });
});

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

describe('place with constraints', () => {
  const unique = spec({ constraints: [{ field: 'hostname', operator: 'UNIQUE' }] });

  /** Places `count` instances one after another, each seeing the earlier ones as peers. */
  function placeAll(loads: Map<NodeId, NodeLoad>, s: PodSpec, count: number): (NodeId | string)[] {
    const peers: NodeId[] = [];
    const out: (NodeId | string)[] = [];
    for (let i = 0; i < count; i++) {
      const p = place(loads, s, null, s.gpuCount, peers);
      out.push(p.ok ? p.nodeId : p.reason);
      if (p.ok) peers.push(p.nodeId);
    }
    return out;
  }

  it('UNIQUE hostname spreads two instances over two nodes, and a third waits with a clear reason', () => {
    const a = node('node-a', 8, 32);
    const b = node('node-b', 8, 32);
    const loads = loadsOf(load(a), load(b, { cpus: 4 }));
    const [first, second, third] = placeAll(loads, unique, 3);
    assert.equal(first, a.id, 'the less loaded node first');
    assert.equal(second, b.id, 'node-a is taken, though it is still the less loaded');
    assert.equal(third, 'node-a: UNIQUE hostname: already runs an instance of this pod; node-b: UNIQUE hostname: already runs an instance of this pod');
  });

  it('without peers, a pod with constraints places as before', () => {
    const r = place(loadsOf(load(node('a', 8, 8))), unique);
    assert.ok(r.ok);
  });

  it('ignores peers on nodes that are no longer registered', () => {
    const a = node('a', 8, 8);
    assert.ok(place(loadsOf(load(a)), unique, null, 0, ['id-gone' as NodeId]).ok);
  });

  it('CLUSTER without a value keeps every instance on the first one\'s rack', () => {
    const a = node('a', 8, 32, [], { rack: 'r1' });
    const b = node('b', 8, 32, [], { rack: 'r2' });
    const c = node('c', 8, 32, [], { rack: 'r1' });
    const s = spec({ vcpuCount: 4, constraints: [{ field: 'rack', operator: 'CLUSTER' }] });
    const loads = loadsOf(load(a, { cpus: 1 }), load(b), load(c, { cpus: 2 }));
    const placed = placeAll(loads, s, 2);
    assert.deepEqual(placed, [b.id, b.id]);
    // A third instance would need 4 more vCPU on rack r2, whose only node is full.
    const r = place(loadsOf(load(a), load(b, { cpus: 8 }), load(c)), s, null, 0, [b.id, b.id]);
    assert.deepEqual(r, {
      ok: false,
      reason: 'a: CLUSTER rack: the pod\'s first instance runs where rack is "r2", this node has "r1"; b: needs 4 vCPU, 0 of 8 free; c: CLUSTER rack: the pod\'s first instance runs where rack is "r2", this node has "r1"',
    });
  });

  it('CLUSTER with a value keeps to nodes with it', () => {
    const a = node('a', 8, 32, [], { 'gpu-class': 'a100' });
    const b = node('b', 8, 32, [], { 'gpu-class': 't4' });
    const s = spec({ constraints: [{ field: 'gpu-class', operator: 'CLUSTER', value: 'a100' }] });
    const r = place(loadsOf(load(a, { cpus: 7 }), load(b)), s);
    assert.ok(r.ok);
    assert.equal(r.nodeId, a.id);
  });

  it('GROUP_BY spreads over the zones before it stacks, even onto a busier node', () => {
    const z = (name: string, zone: string, cpus = 0) => load(node(name, 16, 64, [], { 'topology.kubernetes.io/zone': zone }), { cpus });
    const loads = loadsOf(z('a1', 'z1'), z('a2', 'z1'), z('b1', 'z2', 8), z('c1', 'z3', 12));
    const s = spec({ constraints: [{ field: '@zone', operator: 'GROUP_BY' }] });
    const placed = placeAll(loads, s, 4).map((id) => loads.get(id as NodeId)!.node.labels['topology.kubernetes.io/zone']);
    assert.deepEqual(placed.slice(0, 3).sort(), ['z1', 'z2', 'z3']);
    assert.equal(placed.length, 4);
  });

  it('GROUP_BY N refuses a new value once N are used, saying so', () => {
    const racks = ['r1', 'r2', 'r3'].map((r) => load(node(`n-${r}`, 8, 32, [], { rack: r })));
    const loads = loadsOf(...racks);
    const s = spec({ constraints: [{ field: 'rack', operator: 'GROUP_BY', value: '2' }] });
    const peers = [racks[0]!.node.id, racks[1]!.node.id];
    const r = place(loadsOf(racks[2]!), s, null, 0, []);
    assert.ok(r.ok, 'alone it is fine');
    const refused = place(loads, s, racks[2]!.node.id, 0, peers);
    assert.deepEqual(refused, { ok: false, reason: 'n-r3: GROUP_BY rack "2": the pod already spreads over 2 values of rack, as many as GROUP_BY 2 allows' });
    const next = place(loads, s, null, 0, peers);
    assert.ok(next.ok);
    assert.notEqual(next.nodeId, racks[2]!.node.id);
  });

  it('MAX_PER caps instances per value', () => {
    const a = node('a', 8, 32, [], { rack: 'r1' });
    const b = node('b', 8, 32, [], { rack: 'r1' });
    const c = node('c', 8, 32, [], { rack: 'r2' });
    const s = spec({ constraints: [{ field: 'rack', operator: 'MAX_PER', value: '2' }] });
    const loads = loadsOf(load(a), load(b), load(c, { cpus: 6 }));
    const placed = placeAll(loads, s, 5);
    assert.deepEqual(placed.slice(0, 4).map((id) => loads.get(id as NodeId)!.node.labels.rack).sort(), ['r1', 'r1', 'r2', 'r2']);
    assert.equal(placed[4], 'a: MAX_PER rack "2": rack "r1" already has 2 instances of this pod, the most allowed; b: MAX_PER rack "2": rack "r1" already has 2 instances of this pod, the most allowed; c: MAX_PER rack "2": rack "r2" already has 2 instances of this pod, the most allowed');
  });

  it('says when no node has the label a constraint needs', () => {
    const loads = loadsOf(load(node('a', 8, 8)), load(node('b', 8, 8, [], { zone: 'z1' })));
    assert.deepEqual(place(loads, spec({ constraints: [{ field: 'rack', operator: 'UNIQUE' }] })), { ok: false, reason: 'no node has attribute rack' });
    const like = place(loads, spec({ constraints: [{ field: '@zone', operator: 'LIKE', value: 'z.*' }] }));
    assert.ok(like.ok);
    assert.equal(like.nodeId, 'id-b');
    assert.ok(place(loads, spec({ constraints: [{ field: 'rack', operator: 'UNLIKE', value: 'r1' }] })).ok, 'UNLIKE accepts nodes without it');
  });

  it('names a LIKE mismatch per node', () => {
    const loads = loadsOf(load(node('node-b', 8, 8, [], { 'gpu-class': 't4' })));
    const r = place(loads, spec({ constraints: [{ field: 'gpu-class', operator: 'LIKE', value: 'a100|h100' }] }));
    assert.deepEqual(r, { ok: false, reason: 'node-b: LIKE gpu-class "a100|h100": its value is "t4"' });
  });

  it('checks constraints on the pinned node too', () => {
    const a = node('a', 8, 8);
    const r = place(loadsOf(load(a)), unique, a.id, 0, [a.id]);
    assert.deepEqual(r, { ok: false, reason: 'a: UNIQUE hostname: already runs an instance of this pod' });
  });

  it('keeps GPU packing among the nodes that qualify', () => {
    const a = node('a', 64, 512, gpus(A100, 8, 'a'), { rack: 'r1' });
    const b = node('b', 64, 512, gpus(A100, 8, 'b'), { rack: 'r2' });
    const c = node('c', 64, 512, gpus(A100, 8, 'c'), { rack: 'r3' });
    const taken = (n: Node, k: number) => n.capacity.gpus.slice(0, k).map((g) => g.uuid);
    const loads = loadsOf(load(a, { gpuUuids: taken(a, 7) }), load(b, { gpuUuids: taken(b, 6) }), load(c));
    const s = spec({ gpuCount: 1, constraints: [{ field: 'rack', operator: 'UNIQUE' }] });
    const r = place(loads, s, null, 1, [a.id]);
    assert.ok(r.ok);
    assert.equal(r.nodeId, b.id, 'a is the tightest but taken; b is the next tightest');
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

describe('place in a large cluster', () => {
  const many = (n: number, make: (i: number) => Node): Map<NodeId, NodeLoad> => loadsOf(...Array.from({ length: n }, (_, i) => load(make(i))));

  it('finds the few nodes with the GPU type asked for among many without', () => {
    const loads = many(500, (i) => (i % 100 === 7 ? node(`g${i}`, 16, 64, gpus(A100, 4, `g${i}`)) : node(`c${i}`, 16, 64)));
    const p = place(loads, spec({ gpuCount: 2, gpuTypeIds: [A100] }));
    assert.ok(p.ok && p.gpus.length === 2 && p.gpus.every((g) => g.name === A100), JSON.stringify(p));
  });

  it('names 20 nodes in a refusal and counts the rest', () => {
    const loads = many(300, (i) => node(`c${i}`, 4, 8));
    const p = place(loads, spec({ vcpuCount: 8 }));
    assert.ok(!p.ok);
    assert.match(p.reason, /c0: needs 8 vCPU/);
    assert.match(p.reason, /and 280 more nodes$/);
  });

  it('packs GPU pods and hands no GPU out twice over many placements', () => {
    const loads = many(400, (i) => node(`g${i}`, 64, 256, gpus(RTX, 4, `g${i}`)));
    const seen = new Set<string>();
    for (let n = 0; n < 800; n++) {
      const s = spec({ gpuCount: 1 });
      const p = place(loads, s);
      assert.ok(p.ok);
      for (const g of p.gpus) {
        assert.ok(!seen.has(g.uuid), `GPU ${g.uuid} twice`);
        seen.add(g.uuid);
      }
      reserve(loads.get(p.nodeId)!, s, p.gpus.map((g) => g.uuid));
    }
    // Packing: the 800 GPUs fill whole machines rather than one GPU on each of 400.
    const used = [...loads.values()].filter((l) => l.gpuUuids.size > 0).length;
    assert.ok(used <= 220, `${used} machines used for 800 single-GPU pods`);
  });
});

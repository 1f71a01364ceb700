import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePodSpec, type Node, type NodeId, type PodInput, type PodSpec } from '../model/index.js';
import { boundToNode, unreachableAfterMs } from './node-binding.js';
import { decideLost, lostMessage, nodesGoneSilent } from './node-decide.js';
import { nodeLoads, place } from './scheduler.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const spec = (input: Omit<PodInput, 'image'> = {}): PodSpec => compilePodSpec({ image: 'busybox', volumeGb: 0, ...input });

function node(over: Partial<Node> = {}): Node {
  return {
    id: 'n1' as NodeId,
    name: 'gpu1',
    publicIp: '10.0.0.1',
    labels: {},
    capacity: { cpus: 8, memoryMb: 16384, gpus: [], gpusSimulated: false },
    agentVersion: '0.1.0',
    registeredAt: iso(T0),
    lastSeenAt: iso(T0),
    revision: 1,
    ...over,
  };
}

describe('nodesGoneSilent', () => {
  it('marks a node silent past the timeout, NOT_READY from the moment the timeout ran out, once', () => {
    assert.deepEqual(nodesGoneSilent([node()], T0 + 40_000, 40_000), []);
    const [silent] = nodesGoneSilent([node()], T0 + 40_001, 40_000);
    assert.equal(silent?.since, iso(T0 + 40_000));
    assert.deepEqual(nodesGoneSilent([node({ notReadySince: iso(T0 + 40_000) })], T0 + 90_000, 40_000), []);
  });

  it('gives every node one timeout from the server start to call again', () => {
    assert.deepEqual(nodesGoneSilent([node()], T0 + 100_000, 40_000, T0 + 90_000), []);
    assert.equal(nodesGoneSilent([node()], T0 + 130_001, 40_000, T0 + 90_000)[0]?.since, iso(T0 + 130_000));
  });
});

describe('boundToNode', () => {
  it('binds a volume disk without a network volume, and Marathon persistent volumes; nothing else', () => {
    assert.equal(boundToNode(spec()), null);
    assert.match(boundToNode(spec({ volumeGb: 5 })) ?? '', /volume disk \(5 GB at \/workspace\) lives on the node/);
    assert.equal(boundToNode({ ...spec({ volumeGb: 5 }), networkVolumeId: 'nv1' as PodSpec['networkVolumeId'] }), null);
    const resident = { ...spec(), volumes: [{ name: 'data', kind: 'persistent' as const, sizeMb: 10 }] };
    assert.match(boundToNode(resident) ?? '', /persistent volume data lives on the node/);
  });

  it('binds a network volume only where its node holds it (no shared storage)', () => {
    const withVolume = { ...spec({ volumeGb: 5 }), networkVolumeId: 'nv1' as PodSpec['networkVolumeId'] };
    assert.equal(boundToNode(withVolume, false), null, 'on an NFS export: it may move');
    assert.match(boundToNode(withVolume, true) ?? '', /network volume nv1 lives on the node/);
    assert.equal(boundToNode(spec(), true), null, 'no network volume, nothing held');
  });
});

describe('unreachableAfterMs', () => {
  it("reads Marathon's inactiveAfterSeconds, 'disabled' as never, and the default otherwise", () => {
    assert.equal(unreachableAfterMs(spec(), 60_000), 60_000);
    const marathon = (u: unknown): PodSpec => ({ ...spec(), marathon: { id: '/a', definition: { scheduling: { unreachableStrategy: u } } } });
    assert.equal(unreachableAfterMs(marathon({ inactiveAfterSeconds: 0, expungeAfterSeconds: 0 })), 0);
    assert.equal(unreachableAfterMs(marathon({ inactiveAfterSeconds: 30, expungeAfterSeconds: 60 })), 30_000);
    assert.equal(unreachableAfterMs(marathon('disabled')), null);
  });
});

describe('decideLost', () => {
  const lost = node({ notReadySince: iso(T0) });
  const running = { nodeId: 'n1' as NodeId, goal: 'running' as const };

  it('does nothing while the node answers, or for what runs nowhere', () => {
    assert.deepEqual(decideLost(running, spec(), node(), T0), { action: 'none' });
    assert.deepEqual(decideLost({ nodeId: null, goal: 'running' }, spec(), undefined, T0), { action: 'none' });
  });

  it('replaces a movable instance once the unreachable time has passed, not before', () => {
    assert.deepEqual(decideLost(running, spec(), lost, T0 + 59_999, 60_000), { action: 'pending', at: iso(T0 + 60_000) });
    assert.deepEqual(decideLost(running, spec(), lost, T0 + 60_000, 60_000), { action: 'replace' });
  });

  it('leaves what is stopped or already replaced to the node', () => {
    assert.deepEqual(decideLost({ ...running, goal: 'stopped' }, spec(), lost, T0 + 600_000), { action: 'none' });
    assert.deepEqual(decideLost({ ...running, goal: 'removed' }, spec(), lost, T0 + 600_000), { action: 'none' });
  });

  it('keeps a pod bound to the node with it, and says why', () => {
    const v = decideLost(running, spec({ volumeGb: 10 }), lost, T0 + 600_000);
    assert.equal(v.action, 'wait');
    assert.match(lostMessage(lost, v), /^node gpu1 is not answering \(NOT_READY since 2030-01-01T00:00:00.000Z\): its volume disk .* lives on the node; it waits for the node to come back$/);
  });

  it('starts a running instance again elsewhere when its node is gone for good, and forgets the rest', () => {
    assert.deepEqual(decideLost(running, spec({ volumeGb: 10 }), undefined, T0), { action: 'replace' });
    assert.deepEqual(decideLost({ ...running, goal: 'removed' }, spec(), undefined, T0), { action: 'forget' });
  });
});

describe('placement and node state', () => {
  it('skips cordoned and NOT_READY nodes with the reason, but not for a pinned instance', () => {
    const loads = nodeLoads([node({ cordoned: true }), node({ id: 'n2' as NodeId, name: 'gpu2', notReadySince: iso(T0) })], [], () => undefined, T0);
    const p = place(loads, spec());
    assert.equal(p.ok, false);
    assert.match(!p.ok ? p.reason : '', /gpu1: cordoned; gpu2: NOT_READY since/);
    assert.equal(place(loads, spec(), 'n1' as NodeId).ok, true);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Constraint, ConstraintOperator, Node, NodeId } from '../model/index.js';
import { describeConstraint, fieldValue, groupCrowding, meetsConstraints, missingEverywhere, normalizeScalar, violation } from './constraints.js';

function node(name: string, labels: Record<string, string> = {}): Node {
  return {
    id: `id-${name}` as NodeId,
    name,
    publicIp: '10.0.0.1',
    labels,
    capacity: { cpus: 8, memoryMb: 8192, gpus: [], gpusSimulated: true },
    agentVersion: 'test',
    registeredAt: '2024-01-01T00:00:00.000Z',
    lastSeenAt: '2024-01-01T00:00:00.000Z',
    revision: 1,
  };
}

const c = (field: string, operator: ConstraintOperator, value: string | null = null): Constraint => ({ field, operator, value });

/** True when the node keeps the one constraint. */
const ok = (n: Node, k: Constraint, peers: Node[] = []): boolean => violation(n, k, peers) === null;

const rack = (name: string, value: string): Node => node(name, { rack: value });

describe('fieldValue', () => {
  it('reads hostname and @hostname from the node name', () => {
    const n = node('gpu-1', { hostname: 'not-this' });
    assert.equal(fieldValue(n, 'hostname'), 'gpu-1');
    assert.equal(fieldValue(n, '@hostname'), 'gpu-1');
  });

  it('reads @region and @zone from the Kubernetes topology labels first, then the short names', () => {
    const both = node('a', { 'topology.kubernetes.io/zone': 'eu-1a', zone: 'z-old', 'topology.kubernetes.io/region': 'eu', region: 'r-old' });
    assert.equal(fieldValue(both, '@zone'), 'eu-1a');
    assert.equal(fieldValue(both, '@region'), 'eu');
    const short = node('b', { zone: 'z1', region: 'r1' });
    assert.equal(fieldValue(short, '@zone'), 'z1');
    assert.equal(fieldValue(short, '@region'), 'r1');
    assert.equal(fieldValue(node('c'), '@zone'), undefined);
  });

  it('reads any other field from the label of that name, and nothing when it is absent', () => {
    const n = node('a', { 'gpu-class': 'a100', zone: 'z1' });
    assert.equal(fieldValue(n, 'gpu-class'), 'a100');
    assert.equal(fieldValue(n, 'zone'), 'z1', 'a plain "zone" is a label like any other');
    assert.equal(fieldValue(n, 'rack'), undefined);
  });
});

describe('normalizeScalar', () => {
  it('formats scalars as Mesos does (0.###, half-even) and leaves text alone', () => {
    assert.equal(normalizeScalar('1.0'), '1');
    assert.equal(normalizeScalar('1'), '1');
    assert.equal(normalizeScalar('007'), '7');
    assert.equal(normalizeScalar('0.5'), '0.5');
    assert.equal(normalizeScalar('1.2500'), '1.25');
    assert.equal(normalizeScalar('1.0004'), '1');
    assert.equal(normalizeScalar('1.0005'), '1', 'half-even: 0 stays');
    assert.equal(normalizeScalar('1.0015'), '1.002', 'half-even: 1 goes up');
    assert.equal(normalizeScalar('1.00051'), '1.001');
    assert.equal(normalizeScalar('9.9996'), '10');
    assert.equal(normalizeScalar('0.0001'), '0');
    for (const text of ['a100', '1.', '.5', '-1', '1e3', '', '1.0.0', 'v1']) assert.equal(normalizeScalar(text), text);
  });
});

describe('UNIQUE', () => {
  const k = c('hostname', 'UNIQUE');

  it('accepts any node while the pod has no other instance', () => {
    assert.ok(ok(node('a'), k));
  });

  it('refuses a host that already runs an instance, in Marathon\'s words', () => {
    assert.equal(meetsConstraints(node('a'), [k], [node('a')]), 'a: UNIQUE hostname: already runs an instance of this pod');
    assert.ok(ok(node('b'), k, [node('a')]));
    assert.equal(violation(node('a'), c('@hostname', 'UNIQUE'), [node('b'), node('a')]), 'already runs an instance of this pod');
  });

  it('on a label: no two instances share its value', () => {
    const r = c('rack', 'UNIQUE');
    assert.equal(violation(rack('b', 'r1'), r, [rack('a', 'r1')]), 'rack "r1" already has an instance of this pod');
    assert.ok(ok(rack('b', 'r2'), r, [rack('a', 'r1')]));
    assert.ok(ok(rack('a', 'r2'), r, [rack('a', 'r1')]), 'the field is the label, not the node');
  });

  it('compares scalar labels after normalization', () => {
    assert.ok(!ok(node('b', { level: '1' }), c('level', 'UNIQUE'), [node('a', { level: '1.0' })]));
  });

  it('refuses a node without the label; peers without it take no value', () => {
    assert.equal(violation(node('b'), c('rack', 'UNIQUE'), []), 'it has no label rack');
    assert.ok(ok(rack('b', 'r1'), c('rack', 'UNIQUE'), [node('a')]));
  });
});

describe('CLUSTER', () => {
  it('with a value: the node\'s value must equal it, whatever the peers', () => {
    const k = c('rack', 'CLUSTER', 'r1');
    assert.ok(ok(rack('a', 'r1'), k));
    assert.ok(ok(rack('a', 'r1'), k, [rack('b', 'r2')]), 'Marathon checks only the value when one is given');
    assert.equal(meetsConstraints(rack('a', 'r2'), [k], []), 'a: CLUSTER rack "r1": its value is "r2"');
    assert.ok(ok(node('a', { level: '2' }), c('level', 'CLUSTER', '2.0')));
  });

  it('with a value on the hostname: only that host', () => {
    const k = c('hostname', 'CLUSTER', 'gpu-1');
    assert.ok(ok(node('gpu-1'), k));
    assert.equal(violation(node('gpu-2'), k, []), 'its value is "gpu-2"');
  });

  it('without a value: the first instance picks, the rest follow it', () => {
    const k = c('rack', 'CLUSTER');
    assert.ok(ok(rack('a', 'r1'), k), 'nothing placed yet: any value');
    assert.ok(ok(rack('c', 'r1'), k, [rack('a', 'r1'), rack('b', 'r2')]));
    assert.equal(violation(rack('b', 'r2'), k, [rack('a', 'r1'), rack('b', 'r2')]), 'the pod\'s first instance runs where rack is "r1", this node has "r2"');
  });

  it('without a value on the hostname: every instance on the first one\'s host', () => {
    const k = c('hostname', 'CLUSTER');
    assert.ok(ok(node('a'), k, [node('a')]));
    assert.equal(violation(node('b'), k, [node('a')]), 'the pod\'s first instance runs on a');
  });

  it('without a value, when the first instance\'s node lacks the label, nothing qualifies', () => {
    assert.equal(violation(rack('b', 'r1'), c('rack', 'CLUSTER'), [node('a')]), 'the pod\'s first instance runs on a, which has no label rack');
  });

  it('refuses a node without the label', () => {
    assert.equal(violation(node('a'), c('rack', 'CLUSTER', 'r1'), []), 'it has no label rack');
  });
});

describe('GROUP_BY', () => {
  const k = c('rack', 'GROUP_BY');

  it('without a value: a used value must be among the least used; a new value is always welcome', () => {
    const peers = [rack('a', 'r1'), rack('a', 'r1'), rack('b', 'r2')];
    assert.equal(violation(rack('a', 'r1'), k, peers), 'rack "r1" has 2 instances of this pod, another value has 1');
    assert.ok(ok(rack('b', 'r2'), k, peers));
    assert.ok(ok(rack('c', 'r3'), k, peers));
    assert.ok(ok(rack('a', 'r1'), k, [rack('a', 'r1'), rack('b', 'r2')]), 'even: both at the minimum');
    assert.ok(ok(rack('a', 'r1'), k), 'no instance yet');
  });

  it('with N: a new value only while fewer than N values are used', () => {
    const k2 = c('rack', 'GROUP_BY', '2');
    assert.ok(ok(rack('b', 'r2'), k2, [rack('a', 'r1')]));
    const peers = [rack('a', 'r1'), rack('b', 'r2')];
    assert.equal(violation(rack('c', 'r3'), k2, peers), 'the pod already spreads over 2 values of rack, as many as GROUP_BY 2 allows');
    assert.ok(ok(rack('a', 'r1'), k2, peers));
    assert.ok(!ok(rack('a', 'r1'), k2, [...peers, rack('a', 'r1')]), 'r1 now has more than r2');
    assert.ok(ok(rack('c', 'r3'), c('rack', 'GROUP_BY', '3'), peers));
  });

  it('with N, a used value at the minimum stays acceptable before N values are used', () => {
    // Only one rack exists in a small cluster: instances still place there rather than wait forever.
    assert.ok(ok(rack('a', 'r1'), c('rack', 'GROUP_BY', '3'), [rack('a', 'r1')]));
  });

  it('GROUP_BY 0 is the same as no value', () => {
    assert.ok(ok(rack('c', 'r9'), c('rack', 'GROUP_BY', '0'), [rack('a', 'r1'), rack('b', 'r2')]));
  });

  it('on the hostname: spreads over nodes', () => {
    const h = c('hostname', 'GROUP_BY');
    assert.equal(violation(node('a'), h, [node('a'), node('a'), node('b')]), 'this node has 2 instances of this pod, another node has 1');
    assert.ok(ok(node('b'), h, [node('a'), node('a'), node('b')]));
  });

  it('peers whose node lacks the label form no group; a node lacking it is refused', () => {
    assert.ok(ok(rack('a', 'r1'), k, [rack('a', 'r1'), node('x'), rack('b', 'r2')]));
    assert.equal(violation(node('x'), k, []), 'it has no label rack');
  });

  it('groupCrowding counts the peers already on the node\'s values', () => {
    const peers = [rack('a', 'r1'), rack('b', 'r2'), rack('a', 'r1')];
    assert.equal(groupCrowding(rack('a', 'r1'), [k], peers), 2);
    assert.equal(groupCrowding(rack('c', 'r3'), [k], peers), 0);
    assert.equal(groupCrowding(rack('a', 'r1'), [c('rack', 'UNIQUE')], peers), 0, 'only GROUP_BY counts');
    assert.equal(groupCrowding(node('a', { rack: 'r1', zone: 'z1' }), [k, c('@zone', 'GROUP_BY')], [node('b', { rack: 'r1', zone: 'z1' })]), 2);
  });
});

describe('LIKE and UNLIKE', () => {
  it('LIKE is a full regex match', () => {
    const k = c('gpu-class', 'LIKE', 'a100|h100');
    assert.ok(ok(node('a', { 'gpu-class': 'a100' }), k));
    assert.ok(ok(node('a', { 'gpu-class': 'h100' }), k));
    assert.equal(meetsConstraints(node('b', { 'gpu-class': 't4' }), [k], []), 'b: LIKE gpu-class "a100|h100": its value is "t4"');
    assert.ok(!ok(node('c', { 'gpu-class': 'a100x' }), k), 'a prefix match is not enough');
    assert.ok(!ok(node('c', { 'gpu-class': 'xa100' }), c('gpu-class', 'LIKE', 'a100')));
    assert.ok(ok(node('c', { 'gpu-class': 'anything' }), c('gpu-class', 'LIKE', '.*')));
  });

  it('UNLIKE is a full regex non-match', () => {
    const k = c('gpu-class', 'UNLIKE', 't4|k80');
    assert.ok(ok(node('a', { 'gpu-class': 'a100' }), k));
    assert.ok(ok(node('a', { 'gpu-class': 't40' }), k), 't40 does not fully match t4');
    assert.equal(violation(node('a', { 'gpu-class': 'k80' }), k, []), 'its value is "k80"');
  });

  it('a node without the label matches only UNLIKE', () => {
    assert.equal(violation(node('a'), c('gpu-class', 'LIKE', '.*'), []), 'it has no label gpu-class');
    assert.ok(ok(node('a'), c('gpu-class', 'UNLIKE', 'a100')));
    assert.ok(ok(node('a'), c('gpu-class', 'UNLIKE', '.*')));
  });

  it('matches the hostname and the @zone label', () => {
    assert.ok(ok(node('gpu-7'), c('hostname', 'LIKE', 'gpu-[0-9]+')));
    assert.ok(!ok(node('cpu-1'), c('@hostname', 'LIKE', 'gpu-[0-9]+')));
    assert.ok(ok(node('a', { 'topology.kubernetes.io/zone': 'eu-1b' }), c('@zone', 'UNLIKE', 'eu-1a')));
    assert.equal(violation(node('a'), c('@zone', 'LIKE', 'eu-.*'), []), 'it has no zone label (topology.kubernetes.io/zone or zone)');
  });

  it('matches the label as written, without scalar normalization', () => {
    assert.ok(ok(node('a', { level: '1.0' }), c('level', 'LIKE', '1\\.0')));
  });

  it('says when an (old, unvalidated) pattern does not compile, or the value is missing', () => {
    assert.equal(violation(node('a', { x: 'y' }), c('x', 'LIKE', '('), []), '"(" is not a valid regular expression');
    assert.equal(violation(node('a', { x: 'y' }), c('x', 'UNLIKE'), []), 'UNLIKE needs a value');
  });
});

describe('MAX_PER', () => {
  const k = c('rack', 'MAX_PER', '2');

  it('allows up to N instances per value', () => {
    assert.ok(ok(rack('a', 'r1'), k));
    assert.ok(ok(rack('a', 'r1'), k, [rack('a', 'r1')]));
    assert.equal(violation(rack('b', 'r1'), k, [rack('a', 'r1'), rack('a', 'r1')]), 'rack "r1" already has 2 instances of this pod, the most allowed');
    assert.ok(ok(rack('c', 'r2'), k, [rack('a', 'r1'), rack('a', 'r1')]));
  });

  it('on the hostname: at most N per node', () => {
    assert.equal(violation(node('a'), c('hostname', 'MAX_PER', '1'), [node('a')]), 'this node already has 1 instance of this pod, the most allowed');
    assert.ok(ok(node('b'), c('hostname', 'MAX_PER', '1'), [node('a')]));
  });

  it('MAX_PER 0 refuses every node; a node without the label is refused', () => {
    assert.ok(!ok(rack('a', 'r1'), c('rack', 'MAX_PER', '0')));
    assert.equal(violation(node('a'), k, []), 'it has no label rack');
  });
});

describe('IS', () => {
  it('is text equality', () => {
    const k = c('gpu-class', 'IS', 'a100');
    assert.ok(ok(node('a', { 'gpu-class': 'a100' }), k));
    assert.equal(meetsConstraints(node('b', { 'gpu-class': 'a1000' }), [k], []), 'b: IS gpu-class "a100": its value is "a1000"');
    assert.ok(!ok(node('b', { 'gpu-class': 'A100' }), k), 'case matters');
  });

  it('normalizes scalars on both sides: "1.0" equals "1"', () => {
    assert.ok(ok(node('a', { level: '1' }), c('level', 'IS', '1.0')));
    assert.ok(ok(node('a', { level: '1.0' }), c('level', 'IS', '1')));
    assert.ok(ok(node('a', { level: '2.50' }), c('level', 'IS', '2.5')));
    assert.ok(!ok(node('a', { level: '1.01' }), c('level', 'IS', '1')));
  });

  it('refuses a node without the label', () => {
    assert.equal(violation(node('a'), c('level', 'IS', '1'), []), 'it has no label level');
  });
});

describe('meetsConstraints', () => {
  it('passes a node that keeps every constraint, and names the first one broken', () => {
    const n = node('a', { rack: 'r1', 'gpu-class': 'a100' });
    const all = [c('gpu-class', 'LIKE', 'a100'), c('rack', 'UNIQUE'), c('hostname', 'MAX_PER', '5')];
    assert.equal(meetsConstraints(n, all, []), null);
    assert.equal(meetsConstraints(n, all, [rack('b', 'r1')]), 'a: UNIQUE rack: rack "r1" already has an instance of this pod');
    assert.equal(meetsConstraints(n, [], [n]), null);
  });

  it('describeConstraint shows the value only when there is one', () => {
    assert.equal(describeConstraint(c('hostname', 'UNIQUE')), 'UNIQUE hostname');
    assert.equal(describeConstraint(c('rack', 'GROUP_BY', '3')), 'GROUP_BY rack "3"');
  });
});

describe('missingEverywhere', () => {
  it('names a label no node has, for every operator but UNLIKE', () => {
    const nodes = [node('a', { zone: 'z1' }), node('b')];
    assert.equal(missingEverywhere(nodes, [c('rack', 'UNIQUE')]), 'no node has attribute rack');
    assert.equal(missingEverywhere(nodes, [c('rack', 'UNLIKE', 'x')]), null);
    assert.equal(missingEverywhere(nodes, [c('@zone', 'GROUP_BY')]), null, 'a has a zone');
    assert.equal(missingEverywhere(nodes, [c('@region', 'CLUSTER')]), 'no node has a region label (topology.kubernetes.io/region or region)');
    assert.equal(missingEverywhere(nodes, [c('hostname', 'UNIQUE')]), null);
    assert.equal(missingEverywhere([], [c('rack', 'UNIQUE')]), null);
  });
});

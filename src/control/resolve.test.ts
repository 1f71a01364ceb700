import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BerthError, compilePodSpec, instanceIdOf, newPodId, type Instance, type InstanceObservation, type NodeId, type OwnerId, type PodStatus } from '../model/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import type { NodeAccess } from './agent-protocol.js';
import { AgentService } from './agents.js';
import { PodService } from './pods.js';
import { testObservation } from '../../test/support/observation.js';
import { InstanceResolver } from './resolve.js';
import { Sealer } from './sealer.js';

const ALICE = { owner: 'alice' as OwnerId, admin: false };
const BOB = { owner: 'bob' as OwnerId, admin: false };
const at = new Date().toISOString();

const observed = (state: InstanceObservation['state']): InstanceObservation => testObservation(state, { updatedAt: at });

describe('InstanceResolver', () => {
  let store: Store;
  let agents: AgentService;
  let resolver: InstanceResolver;
  let nodeId: NodeId;
  // The node's access is whatever the agent registered: the resolver hands it on untouched.
  const access = { marker: 'node-1' } as unknown as NodeAccess;

  before(async () => {
    store = await openStore();
    const pods = new PodService(store);
    agents = new AgentService(store, pods, Sealer.fromKey(randomBytes(32)));
    resolver = new InstanceResolver(pods, agents);
    ({ nodeId } = await agents.register({ name: 'n1', publicIp: '127.0.0.1', labels: {}, capacity: { cpus: 4, memoryMb: 4096, gpus: [], gpusSimulated: false }, agentVersion: 'test' }));
    agents.setNodeAccess(nodeId, access);
  });
  after(async () => {
    agents.close();
    await store.close();
  });

  /** A pod of alice's with instances in the given states (null: not placed). */
  async function pod(status: PodStatus, states: (InstanceObservation['state'] | null)[]) {
    const id = newPodId();
    const spec = compilePodSpec({ instances: states.length, containers: [{ name: 'main', image: 'busybox' }, { name: 'side', image: 'busybox' }] });
    const instances: Omit<Instance, 'revision' | 'specVersion'>[] = states.map((s, ordinal) => ({
      id: instanceIdOf(id, ordinal),
      podId: id,
      ordinal,
      nodeId: s === null ? null : nodeId,
      goal: 'running',
      resetGeneration: 0,
      restartGeneration: 0,
      gpuUuids: [],
      hostPorts: {},
      observed: s === null ? null : observed(s),
    }));
    await store.createPod({ id, owner: ALICE.owner, name: 'p', desiredStatus: 'RUNNING', status, statusMessage: status === 'RUNNING' ? null : 'pulling busybox', nodeId, createdAt: at, updatedAt: at, lastStartedAt: null, terminatedAt: null }, spec, instances);
    return id;
  }

  const refusal = async (p: Promise<unknown>): Promise<BerthError> => {
    try {
      await p;
    } catch (e) {
      if (e instanceof BerthError) return e;
      throw e;
    }
    throw new Error('not refused');
  };

  it('gives the instance and its node access, checking the owner and the container', async () => {
    const id = await pod('RUNNING', ['running', 'running']);
    const r = await resolver.resolve(ALICE, id, { running: true });
    assert.equal(r.instance.ordinal, 0);
    assert.equal(r.access, access);
    assert.equal((await resolver.resolve(ALICE, id, { instance: 1, container: 'side', running: true })).instance.ordinal, 1);
    assert.equal((await refusal(resolver.resolve(BOB, id))).kind, 'POD_NOT_FOUND', "another owner's pod is not found");
    assert.equal((await resolver.resolve({ owner: BOB.owner, admin: true }, id)).instance.ordinal, 0, 'an admin sees it');
    const noContainer = await refusal(resolver.resolve(ALICE, id, { container: 'nope' }));
    assert.equal(noContainer.kind, 'NOT_FOUND');
    assert.match(noContainer.message, /has no container nope \(it has main, side\)/);
    assert.equal((await refusal(resolver.resolve(ALICE, id, { instance: 7 }))).kind, 'NOT_FOUND');
  });

  it('what starts something needs the pod RUNNING and a running instance; logs take any instance', async () => {
    const starting = await pod('STARTING', ['pulling']);
    const e = await refusal(resolver.resolve(ALICE, starting, { running: true }));
    assert.equal(e.kind, 'ACTION_NOT_ALLOWED');
    assert.match(e.message, /is STARTING \(pulling busybox\); it needs to be RUNNING; start it with `berth pod start/);
    assert.equal((await resolver.resolve(ALICE, starting)).instance.ordinal, 0, 'logs of a starting pod');

    const mixed = await pod('RUNNING', ['failed', 'running']);
    assert.equal((await resolver.resolve(ALICE, mixed, { running: true })).instance.ordinal, 1, 'the first running one');
    assert.match((await refusal(resolver.resolve(ALICE, mixed, { instance: 0, running: true }))).message, /instance .*-0 is not running/);
  });

  it('says so when the instance is on no node yet', async () => {
    const waiting = await pod('PROVISIONING', [null]);
    const e = await refusal(resolver.resolve(ALICE, waiting));
    assert.equal(e.kind, 'NODE_UNAVAILABLE');
  });
});

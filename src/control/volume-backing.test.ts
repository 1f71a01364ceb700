import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BerthError, type NetworkVolume, type NetworkVolumeId, type NodeId, type OwnerId } from '../model/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { AgentService, DATA_CENTER_LABEL } from './agents.js';
import type { Caller } from './caller.js';
import { PodService } from './pods.js';
import { ResourceService } from './resources.js';
import { Sealer } from './sealer.js';
import { testObservation } from '../../test/support/observation.js';
import { volumeHeldByNode, nfsDriverOptions, parseNfsFlag, VolumeBacking } from './volume-backing.js';

const volume = (over: Partial<NetworkVolume> = {}): NetworkVolume => ({
  id: 'nv00000001' as NetworkVolumeId,
  owner: 'admin' as OwnerId,
  name: 'data',
  sizeGb: 10,
  dataCenterId: 'east',
  nodeId: null,
  createdAt: '2026-12-05T00:00:00.000Z',
  ...over,
});

describe('the --nfs flag', () => {
  it('reads a data center, a server, an export path and mount options', () => {
    assert.deepEqual(parseNfsFlag('east=10.0.0.5:/srv/berth,nfsvers=4.1,hard'), {
      dataCenter: 'east',
      export: { server: '10.0.0.5', path: '/srv/berth', options: ['nfsvers=4.1', 'hard'] },
    });
    assert.deepEqual(parseNfsFlag('west=nas.lab.example:/exports/berth/').export, { server: 'nas.lab.example', path: '/exports/berth', options: ['rw', 'nfsvers=4'] });
    assert.equal(parseNfsFlag('v6=[fd00::5]:/srv').export.server, 'fd00::5');
  });

  it('refuses what is not an export, naming the flag', () => {
    for (const bad of ['east', 'east=10.0.0.5', 'east=10.0.0.5:srv', '=10.0.0.5:/srv', 'east=10.0.0.5:/srv/../etc', 'east=10.0.0.5:/srv,addr=10.0.0.6', 'east=a b:/srv']) {
      assert.throws(
        () => parseNfsFlag(bad),
        (err: unknown) => err instanceof BerthError && err.kind === 'VALIDATION' && err.problems[0]?.path === '--nfs',
        bad,
      );
    }
  });
});

describe('network volume backing', () => {
  const backing = new VolumeBacking([['east', { server: '10.0.0.5', path: '/srv/berth', options: ['rw', 'nfsvers=4'] }]]);

  it("makes a volume on shared storage the export's subdirectory, through Docker's local driver", () => {
    assert.deepEqual(backing.driverOptions(volume()), { type: 'nfs', o: 'addr=10.0.0.5,rw,nfsvers=4', device: ':/srv/berth/nv00000001' });
    assert.deepEqual(nfsDriverOptions({ server: 'nas', path: '/', options: ['ro'] }, 'v1'), { type: 'nfs', o: 'addr=nas,ro', device: ':/v1' });
    assert.equal(backing.driverOptions(volume({ dataCenterId: 'west' })), null, 'no shared storage: a plain local volume');
  });

  it('pins pods to the holding node only where the data center has no shared storage', () => {
    const a = 'node-a' as NodeId;
    assert.deepEqual(backing.scope(volume({ nodeId: a })), { volume: volume({ nodeId: a }), nodeId: null, binds: false });
    assert.deepEqual(backing.scope(volume({ dataCenterId: 'west' })).binds, true);
    assert.equal(backing.scope(volume({ dataCenterId: 'west', nodeId: a })).nodeId, a);
    assert.equal(volumeHeldByNode({ networkVolumeId: null }, undefined, backing), false);
    assert.equal(volumeHeldByNode({ networkVolumeId: 'nv00000001' as NetworkVolumeId }, volume(), backing), false);
    assert.equal(volumeHeldByNode({ networkVolumeId: 'nv00000001' as NetworkVolumeId }, volume({ dataCenterId: 'west' }), backing), true);
  });
});

/* Placement with a real (in-memory) store: nodes registered as agents register, pods created as the APIs create them. */
describe('placing pods that use a network volume', () => {
  const caller: Caller = { owner: 'admin' as OwnerId, admin: true };
  const capacity = { cpus: 4, memoryMb: 4096, gpus: [], gpusSimulated: false };
  let store: Store;
  let pods: PodService;
  let agents: AgentService;
  let resources: ResourceService;
  const backing = new VolumeBacking([['shared', { server: '10.0.0.5', path: '/srv/berth', options: ['rw'] }]]);
  const nodes: Record<string, NodeId> = {};
  let firstHolder: NodeId;

  before(async () => {
    store = await openStore();
    pods = new PodService(store, { volumeBacking: backing });
    agents = new AgentService(store, pods, Sealer.fromKey(randomBytes(32)), undefined, backing);
    resources = new ResourceService(store, Sealer.fromKey(randomBytes(32)), () => undefined, backing);
    for (const [name, dc] of [['a', 'local'], ['b', 'local'], ['c', 'shared'], ['d', 'shared']] as const) {
      nodes[name] = (await agents.register({ name, publicIp: '127.0.0.1', labels: { [DATA_CENTER_LABEL]: dc }, capacity, agentVersion: 'test' })).nodeId;
    }
  });
  after(async () => {
    agents.close();
    await store.close();
  });

  it('binds a node-held volume at its first pod, and places every later pod on that node', async () => {
    const v = await resources.createNetworkVolume(caller, { name: 'data', sizeGb: 10, dataCenterId: 'local' });
    assert.equal(v.storage, 'node');
    assert.equal(v.nodeId, null);
    const first = await pods.create(caller, { image: 'busybox', networkVolumeId: v.id, instances: 3, vcpuCount: 1 });
    const holder = (firstHolder = first.instances[0]!.nodeId!);
    assert.ok([nodes.a, nodes.b].includes(holder));
    assert.deepEqual(
      first.instances.map((i) => i.nodeId),
      [holder, holder, holder],
    );
    const bound = await resources.getNetworkVolume(caller, v.id);
    assert.equal(bound.nodeId, holder);
    assert.equal(bound.nodeName, holder === nodes.a ? 'a' : 'b');
    // The other node of the data center is emptier now; the volume still decides.
    const second = await pods.create(caller, { image: 'busybox', networkVolumeId: v.id });
    assert.equal(second.instances[0]!.nodeId, holder);
    // A scale-up places its new instance (in the update's transaction) on the holding node too.
    const grown = await pods.update(caller, first.pod.id, { instances: 4 });
    assert.deepEqual(
      grown.instances.map((i) => i.nodeId),
      [holder, holder, holder, holder],
    );
  });

  it('makes a pod wait, saying why, when the holding node is full', async () => {
    // The node the first test's pods left empty, so only this test's pods fill it.
    const name = firstHolder === nodes.a ? 'b' : 'a';
    const v = await resources.createNetworkVolume(caller, { name: 'pinned', sizeGb: 10, nodeId: name });
    assert.equal(v.nodeId, nodes[name]);
    assert.equal(v.dataCenterId, 'local');
    const big = await pods.create(caller, { image: 'busybox', networkVolumeId: v.id, vcpuCount: 4 });
    const waiting = await pods.create(caller, { image: 'busybox', networkVolumeId: v.id, vcpuCount: 4 });
    assert.equal(big.instances[0]!.nodeId, nodes[name]);
    assert.equal(waiting.instances[0]!.nodeId, null, 'the other node has room, but not the data');
    assert.match(pods.waitReasonOf(waiting.pod.id) ?? '', new RegExp(`network volume ${v.id} is held by node ${name}, and pods that use it run there only: ${name}: needs 4 vCPU`));
    // A pod its holding node can never fit waits (the node may come back bigger); RunPod's API refuses it at once.
    const never = await pods.create(caller, { image: 'busybox', networkVolumeId: v.id, vcpuCount: 8 });
    assert.equal(never.instances[0]!.nodeId, null);
    await assert.rejects(pods.create(caller, { image: 'busybox', networkVolumeId: v.id, vcpuCount: 8 }, { refuseUnplaceable: true }), (err: unknown) => err instanceof BerthError && err.kind === 'NO_CAPACITY');
    await pods.act(caller, never.pod.id, 'terminate');
    await pods.act(caller, big.pod.id, 'terminate');
    await agents.report(nodes[name]!, [{ instanceId: big.instances[0]!.id, observation: testObservation('removed') }]);
    await pods.placeWaiting();
    assert.equal((await store.getInstance(waiting.instances[0]!.id))?.nodeId, nodes[name]);
  });

  it('places pods of a volume on shared storage on any node of its data center, and binds it to none', async () => {
    const v = await resources.createNetworkVolume(caller, { name: 'nfs', sizeGb: 10, dataCenterId: 'shared' });
    assert.equal(v.storage, 'nfs');
    const p = await pods.create(caller, { image: 'busybox', networkVolumeId: v.id, instances: 2, vcpuCount: 3 });
    assert.deepEqual(new Set(p.instances.map((i) => i.nodeId)), new Set([nodes.c, nodes.d]), 'spread over both nodes of the data center, none elsewhere');
    assert.equal((await resources.getNetworkVolume(caller, v.id)).nodeId, null);
    const watched = await agents.watch(nodes.c!, 0, 0);
    const a = watched.assignments.find((x) => x.podId === p.pod.id)!;
    assert.deepEqual(a.networkVolumeOptions, { type: 'nfs', o: 'addr=10.0.0.5,rw', device: `:/srv/berth/${v.id}` });
    await assert.rejects(resources.createNetworkVolume(caller, { name: 'x', sizeGb: 1, nodeId: 'c' }), (err: unknown) => err instanceof BerthError && err.problems[0]?.path === '/nodeId');
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { NetworkVolumeId, NodeId, OwnerId } from '../model/index.js';
import { testObservation } from '../../test/support/observation.js';
import type { Caller } from './caller.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { AgentService, networkVolumeName } from './agents.js';
import { PodService } from './pods.js';
import { Sealer } from './sealer.js';

describe('AgentService.watch', () => {
  let store: Store;
  let agents: AgentService;
  let nodeId: NodeId;
  before(async () => {
    store = await openStore();
    agents = new AgentService(store, new PodService(store), Sealer.fromKey(randomBytes(32)));
    ({ nodeId } = await agents.register({ name: 'n1', publicIp: '127.0.0.1', labels: {}, capacity: { cpus: 2, memoryMb: 1024, gpus: [], gpusSimulated: false }, agentVersion: 'test' }));
  });
  after(async () => {
    agents.close();
    await store.close();
  });

  it('answers at once a watch that starts after a wake-all it has not seen', async () => {
    const seen = await agents.watch(nodeId, 0, 0);
    const id = 'nv0000000001' as NetworkVolumeId;
    await store.createNetworkVolume({ id, owner: 'admin' as OwnerId, name: 'shared', sizeGb: 1, dataCenterId: 'local', nodeId: null, createdAt: new Date().toISOString() });
    // The agent is between two watches: nobody waits when the wake goes out.
    agents.wakeAll();
    await new Promise((r) => setTimeout(r, 50));
    // A watch that waited out its time (10 minutes here) would fail the test by its timeout.
    const next = await agents.watch(nodeId, seen.revision, 600_000);
    assert.ok(next.networkVolumes.includes(networkVolumeName(id)));
  });

  it('answers an agent that keeps its assignments with the changed ones only, and whole after a wake or a quiet wait', async () => {
    const caller: Caller = { owner: 'admin' as OwnerId, admin: true };
    const pods = new PodService(store);
    const made = await Promise.all([1, 2, 3].map(() => pods.create(caller, { image: 'busybox', volumeGb: 0 })));
    const [a, b, c] = made.map((m) => m.instances[0]!);
    const whole = await agents.watch(nodeId, 0, 0, undefined, true);
    assert.equal(whole.partial, undefined, 'the first watch is whole');
    assert.deepEqual(new Set(whole.assignments.map((x) => x.instanceId)), new Set([a!.id, b!.id, c!.id]));

    await agents.report(nodeId, [{ instanceId: b!.id, observation: testObservation('running') }]);
    const changed = await agents.watch(nodeId, whole.revision, 600_000, undefined, true);
    assert.deepEqual(changed.assignments.map((x) => x.instanceId), [b!.id]);
    assert.deepEqual(new Set(changed.partial?.instanceIds), new Set([a!.id, b!.id, c!.id]));
    // An agent that does not ask for changes only (an older one) still gets every assignment.
    await agents.report(nodeId, [{ instanceId: a!.id, observation: testObservation('running') }]);
    assert.equal((await agents.watch(nodeId, changed.revision, 600_000)).assignments.length, 3);

    // A terminated pod's instance leaves the list the agent keeps.
    await pods.act(caller, made[2]!.pod.id, 'terminate');
    const afterTerminate = await agents.watch(nodeId, changed.revision, 600_000, undefined, true);
    assert.ok(afterTerminate.partial);
    assert.ok(afterTerminate.assignments.some((x) => x.instanceId === c!.id && x.goal === 'removed'), 'the removal is an assignment change');

    agents.wakeAll();
    const woken = await agents.watch(nodeId, afterTerminate.revision, 600_000, undefined, true);
    assert.equal(woken.partial, undefined, 'a wake may change any assignment (a secret, a login): whole');
    assert.equal(woken.assignments.length, 3);
    const quiet = await agents.watch(nodeId, woken.revision, 20, undefined, true);
    assert.equal(quiet.partial, undefined, 'a wait that ran out answers whole');
    assert.equal(quiet.assignments.length, 3);
  });
});

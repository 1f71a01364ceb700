import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { NetworkVolumeId, NodeId, OwnerId } from '../model/index.js';
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
});

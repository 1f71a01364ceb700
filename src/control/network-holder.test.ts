import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { holdsNetworkApart, type OwnerId } from '../model/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import type { Caller } from './caller.js';
import { PodService } from './pods.js';

/* A pod keeps its network layout when another API changes it (no node: the pods wait unplaced). */

const caller: Caller = { owner: 'admin' as OwnerId, admin: true };

describe('network layout across updates', () => {
  let dir: string;
  let store: Store;
  let pods: PodService;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-layout-'));
    store = await openStore({ dataDir: dir });
    pods = new PodService(store);
  });

  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps Marathon's layout when the native API changes the pod, down to one container", async () => {
    const created = await pods.create(caller, {
      name: '/kept',
      containers: [{ name: 'a', image: 'busybox' }, { name: 'b', image: 'busybox' }],
      volumeGb: 0,
      marathon: { id: '/kept', definition: { id: '/kept' } },
      networkHolder: 'always',
    });
    const changed = await pods.update(caller, created.pod.id, { image: 'nginx' });
    assert.equal(changed.spec.containers.length, 1);
    assert.equal(changed.spec.networkHolder, 'always');
    assert.equal(holdsNetworkApart(changed.spec), true);
    assert.equal(holdsNetworkApart((await store.getPod(created.pod.id))!.spec), true, 'as read back from the store');
  });

  it('gives a native pod that goes down to one container the one-container layout', async () => {
    const created = await pods.create(caller, { name: 'native', containers: [{ name: 'a', image: 'busybox' }, { name: 'b', image: 'busybox' }], volumeGb: 0 });
    assert.equal(holdsNetworkApart(created.spec), true);
    const changed = await pods.update(caller, created.pod.id, { image: 'nginx' });
    assert.equal(changed.spec.networkHolder, undefined);
    assert.equal(holdsNetworkApart(changed.spec), false);
  });

  it('writes and reads a spec naming a Marathon path but no layout as holding its network apart, as one an older Berth stored', async () => {
    const created = await pods.create(caller, { name: '/old', image: 'busybox', volumeGb: 0, marathon: { id: '/old' } });
    assert.equal(created.spec.networkHolder, 'always');
    assert.equal(holdsNetworkApart((await store.getPod(created.pod.id))!.spec), true);
  });
});

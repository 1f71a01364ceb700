import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { InstanceUsage, OwnerId, PodId } from '../model/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { ActivityTracker } from './activity.js';
import { LifetimeController, type LifetimeEvent } from './lifetimes.js';
import { PodService } from './pods.js';

const ALICE = { owner: 'alice' as OwnerId, admin: false };
const MIN = 60_000;

describe('ActivityTracker', () => {
  it('keeps the last use per signal, and a session open until it is released once', () => {
    let now = 1000;
    const a = new ActivityTracker(() => now);
    a.touch('p', 'proxy');
    now = 2000;
    const release = a.open('p', 'ssh');
    assert.equal(a.lastUse('p', ['proxy']), 1000);
    assert.equal(a.lastUse('p', ['proxy', 'ssh']), 2000);
    assert.equal(a.openSession('p', ['proxy', 'ssh']), 'ssh');
    assert.equal(a.openSession('p', ['proxy']), null);
    now = 5000;
    release();
    release();
    assert.equal(a.openSession('p', ['ssh']), null);
    assert.equal(a.lastUse('p', ['ssh']), 5000);
    // A sample's time never moves the last use back.
    a.touch('p', 'gpu', 4000);
    a.touch('p', 'gpu', 3000);
    assert.equal(a.lastUse('p', ['gpu']), 4000);
    a.forget('p');
    assert.equal(a.lastUse('p', ['ssh', 'gpu']), null);
  });
});

/**
 * The controller over a real (in-memory) store and pod service, with no node: pods are made
 * RUNNING by hand, the clock is the test's, and a sweep is called rather than waited for.
 */
describe('LifetimeController', () => {
  let store: Store;
  let pods: PodService;
  let lifetimes: LifetimeController;
  let now = Date.now();
  const samples = new Map<string, { usage: InstanceUsage }[]>();
  const events: LifetimeEvent[] = [];

  const gpuSample = (util: number, simulated: boolean): { usage: InstanceUsage }[] => [
    { usage: { at: new Date(now).toISOString(), containers: [], gpus: [{ uuid: 'GPU-1', index: 0, name: 'H100', utilizationPercent: util, memoryUsedMb: 1, memoryTotalMb: 2, powerWatts: null, temperatureC: null, simulated }] } },
  ];
  async function runningPod(lifetime: unknown): Promise<PodId> {
    const d = await pods.create(ALICE, { image: 'busybox', lifetime: lifetime as never });
    await store.updatePod(d.pod.id, { status: 'RUNNING', lastStartedAt: new Date(now).toISOString() });
    return d.pod.id;
  }
  const statusOf = async (id: PodId) => (await store.getPod(id))!.pod;

  before(async () => {
    store = await openStore();
    pods = new PodService(store);
    lifetimes = new LifetimeController(store, pods, { clock: () => now, usage: { latestOf: (id) => samples.get(id) ?? [] }, sweepMs: 3_600_000 });
    lifetimes.onEvent((e) => events.push(e));
    await lifetimes.start();
  });
  after(async () => {
    await lifetimes.close();
    await store.close();
  });

  it('stops an idle pod and keeps one whose real GPU is busy, not one whose GPU is simulated', async () => {
    const idle = await runningPod({ idleStop: { idleSeconds: 600 } });
    const busy = await runningPod({ idleStop: { idleSeconds: 600 } });
    const simulated = await runningPod({ idleStop: { idleSeconds: 600 } });
    await lifetimes.sweep();
    now += 9 * MIN;
    samples.set(busy, gpuSample(80, false));
    samples.set(simulated, gpuSample(100, true));
    await lifetimes.sweep();
    now += 2 * MIN;
    await lifetimes.sweep();
    assert.equal((await statusOf(idle)).desiredStatus, 'EXITED');
    assert.equal((await statusOf(simulated)).desiredStatus, 'EXITED');
    assert.equal((await statusOf(busy)).desiredStatus, 'RUNNING');
    assert.equal((await statusOf(idle)).statusMessage, 'stopped by the idle policy: GPU under 5% and no SSH, terminal, proxy or port-forward activity for 10 min');
    assert.deepEqual(events.filter((e) => e.podId === idle).map((e) => [e.action, e.policy]), [['stop', 'idle']]);
    // The busy pod's idle time counts from its last busy sample.
    const view = lifetimes.view((await store.getPod(busy))!);
    assert.equal(Date.parse(view.stopsAt!), now - 2 * MIN + 10 * MIN);
  });

  it('holds a pod while a session is open, and judges a policy given later by a PATCH', async () => {
    const id = await runningPod(null);
    const release = lifetimes.activity.open(id, 'terminal');
    await pods.update(ALICE, id, { lifetime: { idleStop: { idleSeconds: 60, signals: ['terminal'] } } });
    // No node runs it: the update's status refresh says PROVISIONING; it runs again by hand.
    await store.updatePod(id, { status: 'RUNNING' });
    now += 10 * MIN;
    await lifetimes.sweep();
    assert.equal((await statusOf(id)).desiredStatus, 'RUNNING');
    assert.equal(lifetimes.view((await store.getPod(id))!).stopsAt, null);
    release();
    now += 61_000;
    await lifetimes.sweep();
    assert.equal((await statusOf(id)).statusMessage, 'stopped by the idle policy: no terminal activity for 1 min');
  });

  it('terminates a pod stopped for long enough; a start forgets the policy message', async () => {
    const id = await runningPod({ terminateAfterStoppedSeconds: 3600 });
    await pods.act(ALICE, id, 'stop');
    await lifetimes.sweep();
    assert.equal((await statusOf(id)).desiredStatus, 'EXITED');
    now = Date.now() + 3601_000;
    await lifetimes.sweep();
    const pod = await statusOf(id);
    assert.equal(pod.desiredStatus, 'TERMINATED');
    assert.equal(pod.statusMessage, 'terminated by the terminate-after-stopped policy: stopped for 1 h');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Deployment, InstanceId, InstanceUsage, NodeId, PodId } from '../model/index.js';
import type { DeploymentEvent } from './deployment-service.js';
import { openStore } from '../store/index.js';
import { ActivityTracker } from './activity.js';
import { ClusterBus } from './cluster-bus.js';
import { UsageService } from './usage.js';

/** PostgreSQL's NOTIFY as the bus sees it: every listener hears every payload, the sender's own included. */
function noticeHub() {
  const listeners = new Set<(p: string) => void>();
  const sent: string[] = [];
  return {
    sent,
    store: {
      publishNotice: async (payload: string) => {
        sent.push(payload);
        for (const l of listeners) l(payload);
      },
      onNotice: (l: (p: string) => void) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
  };
}

const usage = (n: number, at: string): InstanceUsage => ({ at, containers: [{ name: `c${n}` }], gpus: [] }) as unknown as InstanceUsage;

describe('the cluster bus', () => {
  it("tells another server's tracker of uses and open sessions, and forgets sessions a server stops repeating", () => {
    let now = 1_000_000;
    const leader = new ActivityTracker(() => now);
    const follower = new ActivityTracker(() => now);
    follower.touch('pod1', 'proxy', now - 10);
    const close = follower.open('pod2', 'ssh');
    leader.merge('srv_f', follower.takeShared(), now);
    assert.equal(leader.lastUse('pod1', ['proxy']), now - 10);
    assert.equal(leader.openSession('pod2', ['ssh', 'terminal']), 'ssh');
    // Still open: repeated though nothing changed.
    assert.deepEqual(follower.takeShared().map(([p]) => p), ['pod2']);
    close();
    now += 1000;
    leader.merge('srv_f', follower.takeShared(), now);
    assert.equal(leader.openSession('pod2', ['ssh']), null);
    assert.equal(leader.lastUse('pod2', ['ssh']), now - 1000);
    // A server that goes silent with a session open: it counts for a few seconds only.
    const again = follower.open('pod3', 'terminal');
    leader.merge('srv_f', follower.takeShared(), now);
    now += 6000;
    assert.equal(leader.openSession('pod3', ['terminal']), null);
    again();
  });

  it('relays the usage samples a server took to the others, in notices under the size limit', async () => {
    const hub = noticeHub();
    const store = await openStore();
    const a = { usage: new UsageService(store), activity: new ActivityTracker() };
    const b = { usage: new UsageService(store), activity: new ActivityTracker() };
    const busA = new ClusterBus(hub.store, 'srv_a', a);
    const busB = new ClusterBus(hub.store, 'srv_b', b);
    try {
      const at = new Date().toISOString();
      const samples: Array<[InstanceId, PodId, InstanceUsage]> = [];
      for (let i = 0; i < 200; i++) samples.push([`pod${i}-0` as InstanceId, `pod${i}` as PodId, usage(i, at)]);
      // As UsageService.record would after taking an agent's batch.
      for (const l of (a.usage as unknown as { recorded: Set<(n: NodeId, s: typeof samples) => void> }).recorded) l('node1' as NodeId, samples);
      assert.ok(hub.sent.length > 1, 'split into several notices');
      for (const p of hub.sent) assert.ok(Buffer.byteLength(p) < 7900, `a notice of ${Buffer.byteLength(p)} bytes`);
      assert.deepEqual(b.usage.latestOf('pod150' as PodId)[0]?.usage.containers, [{ name: 'c150' }]);
      assert.deepEqual(a.usage.latestOf('pod150' as PodId), [], 'a server does not take back its own notices');
    } finally {
      busA.close();
      busB.close();
      a.usage.close();
      b.usage.close();
      await store.close();
    }
  });

  it("relays the leader's deployment events to the other servers' streams once, without sending them round again", async () => {
    const hub = noticeHub();
    const store = await openStore();
    const emitter = () => {
      const ls = new Set<(e: DeploymentEvent) => void>();
      const heard: DeploymentEvent[] = [];
      ls.add((e) => heard.push(e));
      return { heard, onEvent: (l: (e: DeploymentEvent) => void) => (ls.add(l), () => ls.delete(l)), relay: (e: DeploymentEvent) => ls.forEach((l) => l(e)), emit: (e: DeploymentEvent) => ls.forEach((l) => l(e)) };
    };
    const [dl, df] = [emitter(), emitter()];
    let woken = 0;
    const leader = new ClusterBus(hub.store, 'srv_l', { usage: new UsageService(store), activity: new ActivityTracker(), deployments: dl });
    const follower = new ClusterBus(hub.store, 'srv_f', { usage: new UsageService(store), activity: new ActivityTracker(), deployments: df, wake: () => woken++ });
    try {
      const dep = { id: 'd1', path: '/a', podId: 'p1', action: 'StartPod', version: 'v', toVersion: 1, fromVersion: null, startedAt: 'now' } as unknown as Deployment;
      dl.emit({ eventType: 'deployment_started', deployment: dep });
      assert.deepEqual(df.heard.map((e) => e.eventType), ['deployment_started']);
      assert.equal(dl.heard.length, 1);
      assert.equal(hub.sent.length, 1, 'one notice: the relayed event is not sent on');
      leader.wakeAgents();
      assert.equal(woken, 1);
    } finally {
      leader.close();
      follower.close();
      await store.close();
    }
  });
});

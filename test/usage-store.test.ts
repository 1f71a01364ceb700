// The usage history and the UsageService over it, on SQLite always and on PostgreSQL when
// BERTH_TEST_DATABASE_URL names one (in a schema of its own, dropped after).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UsageService } from '../src/control/usage.js';
import { compilePodSpec, instanceIdOf, newNodeId, newPodId, type InstanceUsage, type NodeId, type OwnerId, type PodId } from '../src/model/index.js';
import { postgresSchema } from './support/stores.js';
import { openStore, type Store } from '../src/store/index.js';

const usageAt = (at: string, cpuSeconds = 1): InstanceUsage => ({
  at,
  containers: [{ name: 'main', cpuSeconds, cpuCores: 0.5, memoryBytes: 1000, memoryLimitBytes: null, networkRxBytes: 1, networkTxBytes: 2, diskReadBytes: 0, diskWriteBytes: 0 }],
  gpus: [],
});

async function podOn(store: Store, nodeId: NodeId | null, status: 'RUNNING' | 'EXITED' = 'RUNNING'): Promise<PodId> {
  const id = newPodId();
  const at = new Date().toISOString();
  await store.createPod(
    { id, owner: 'o' as OwnerId, name: 'p', desiredStatus: 'RUNNING', status, statusMessage: null, nodeId, createdAt: at, updatedAt: at, lastStartedAt: null, terminatedAt: null } as Parameters<Store['createPod']>[0],
    compilePodSpec({ name: 'p', image: 'busybox' }),
    [{ id: instanceIdOf(id, 0), podId: id, ordinal: 0, nodeId, goal: 'running', resetGeneration: 0, restartGeneration: 0, gpuUuids: [], hostPorts: {}, observed: null }],
  );
  return id;
}

function usageSuite(open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>): void {
  let store: Store;
  let cleanup: () => Promise<void>;
  before(async () => ({ store, cleanup } = await open()));
  after(async () => cleanup?.());

  it('keeps one sample per instance per minute, lists by pod and time, prunes by time', async () => {
    const pod = await podOn(store, null);
    const inst = instanceIdOf(pod, 0);
    const s = (at: string, cpu: number) => ({ podId: pod, instanceId: inst, nodeId: null, usage: usageAt(at, cpu) });
    await store.putUsageSamples([s('2026-01-01T10:00:05.000Z', 1), s('2026-01-01T10:00:35.000Z', 2)]);
    await store.putUsageSamples([s('2026-01-01T10:00:55.000Z', 3), s('2026-01-01T10:01:05.000Z', 4), s('2026-01-01T10:02:05.000Z', 5)]);
    const all = await store.listUsageSamples(pod, '2026-01-01T00:00:00.000Z');
    assert.deepEqual(all.map((x) => [x.usage.at, x.usage.containers[0]!.cpuSeconds]), [
      ['2026-01-01T10:00:55.000Z', 3],
      ['2026-01-01T10:01:05.000Z', 4],
      ['2026-01-01T10:02:05.000Z', 5],
    ]);
    assert.deepEqual((await store.listUsageSamples(pod, '2026-01-01T10:01:00.000Z')).map((x) => x.usage.at), ['2026-01-01T10:01:05.000Z', '2026-01-01T10:02:05.000Z']);
    assert.equal(await store.pruneUsageSamples('2026-01-01T10:01:30.000Z'), 2);
    assert.deepEqual((await store.listUsageSamples(pod, '2026-01-01T00:00:00.000Z')).map((x) => x.usage.at), ['2026-01-01T10:02:05.000Z']);
    assert.deepEqual(await store.listUsageSamples(newPodId(), '2026-01-01T00:00:00.000Z'), []);
  });

  it('counts pods by status in one query', async () => {
    const before = await store.countPodsByStatus();
    await podOn(store, null, 'EXITED');
    const after = await store.countPodsByStatus();
    assert.equal((after.EXITED ?? 0) - (before.EXITED ?? 0), 1);
  });

  it('UsageService: latest per instance in memory, a node batch replaces the last, history once a minute, no revision moved, pruned after the retention', async () => {
    const node = newNodeId();
    const other = newNodeId();
    const pod = await podOn(store, node);
    const inst = instanceIdOf(pod, 0);
    const usage = new UsageService(store, { retentionMs: 60_000 });
    try {
      const revision = await store.revision();
      const now = Date.now();
      const at = (ms: number) => new Date(now + ms).toISOString();
      await usage.record(node, [{ instanceId: inst, usage: usageAt(at(0), 1) }]);
      // Not this node's instance: ignored.
      await usage.record(other, [{ instanceId: inst, usage: usageAt(at(1), 99) }]);
      assert.deepEqual((await usage.latestUsage(pod)).map((l) => [l.instanceId, l.usage.containers[0]!.cpuSeconds]), [[inst, 1]]);
      await usage.record(node, [{ instanceId: inst, usage: usageAt(at(2000), 2) }]);
      assert.equal((await usage.latestUsage(pod))[0]!.usage.containers[0]!.cpuSeconds, 2);
      assert.equal(await store.revision(), revision, 'samples move no revision');
      const history = await usage.history(pod, at(-60_000));
      assert.ok(history.length >= 1 && history.length <= 2, 'one a minute');
      // The node's next batch no longer names it: the instance stopped there.
      await usage.record(node, []);
      assert.deepEqual(await usage.latestUsage(pod), []);
      assert.ok([...usage.all()].every(([id]) => id !== inst));
      // Older than the retention (a minute here): pruned.
      assert.ok((await usage.prune(now + 10 * 60_000)) >= 1);
      assert.deepEqual(await usage.history(pod, at(-60_000)), []);
    } finally {
      usage.close();
    }
  });
}

describe('usage history on SQLite', () => {
  usageSuite(async () => {
    const store = await openStore({});
    return { store, cleanup: () => store.close() };
  });
});

const postgresUrl = process.env.BERTH_TEST_DATABASE_URL;
describe('usage history on PostgreSQL', { skip: postgresUrl ? false : 'set BERTH_TEST_DATABASE_URL to run on PostgreSQL' }, () => {
  usageSuite(async () => {
    const { url, drop } = await postgresSchema(postgresUrl!);
    const store = await openStore({ databaseUrl: url });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await drop();
      },
    };
  });
});

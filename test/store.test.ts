// The store's contract, run against SQLite always and against PostgreSQL when
// BERTH_TEST_DATABASE_URL names one (each run in a schema of its own, dropped after).
// One file (~800 lines) on purpose: every case runs on both stores from one list, so a case added
// for one database cannot be forgotten for the other. Usage samples have their own file.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BerthError,
  compilePodSpec,
  instanceIdOf,
  newApiKeyId,
  newJoinTokenId,
  newNodeCredentialId,
  newNetworkVolumeId,
  newNodeId,
  newPodId,
  newRegistryAuthId,
  newSshKeyId,
  newTemplateId,
  type Change,
  type Instance,
  type JoinToken,
  type NodeId,
  type OwnerId,
  type Pod,
  type PodId,
  type PodStatus,
} from '../src/model/index.js';
import { Migrator, type Kysely } from 'kysely';
import { connect } from '../src/store/dialect.js';
import { postgresSchema } from './support/stores.js';
import { openStore, SQLITE_FILE_NAME, type Store } from '../src/store/index.js';
import { migrationProvider } from '../src/store/migrations.js';

interface Harness {
  store: Store;
  cleanup(): Promise<void>;
}

const newOwner = (): OwnerId => `owner-${randomBytes(6).toString('hex')}` as OwnerId;

/** Distinct, increasing creation times, so list order is known without waiting on the clock. */
let clock = Date.parse('2024-01-01T00:00:00.000Z');
const tick = (): string => new Date((clock += 1000)).toISOString();

function podOf(owner: OwnerId, over: Partial<Omit<Pod, 'revision' | 'specVersion'>> = {}): Omit<Pod, 'revision' | 'specVersion'> {
  const at = tick();
  return {
    id: newPodId(),
    owner,
    name: 'pod',
    desiredStatus: 'RUNNING',
    status: 'PROVISIONING',
    statusMessage: null,
    nodeId: null,
    createdAt: at,
    updatedAt: at,
    lastStartedAt: null,
    terminatedAt: null,
    keepAliveUntil: null,
    lastStoppedAt: null,
    lifetimeNote: null,
    ...over,
  };
}

function instanceOf(podId: PodId, ordinal: number, nodeId: NodeId | null = null): Omit<Instance, 'revision' | 'specVersion'> {
  return {
    id: instanceIdOf(podId, ordinal),
    podId,
    ordinal,
    nodeId,
    goal: 'running',
    resetGeneration: 0,
    restartGeneration: 0,
    gpuUuids: [],
    hostPorts: {},
    observed: null,
  };
}

const specOf = (image = 'busybox:latest', name = 'pod') => compilePodSpec({ name, image, ports: ['8888/http'] });

/** A pod with one instance, as the pod service creates it. */
async function createPod(store: Store, owner: OwnerId, over: Partial<Omit<Pod, 'revision' | 'specVersion'>> = {}, image?: string) {
  const pod = podOf(owner, over);
  return store.createPod(pod, specOf(image), [instanceOf(pod.id, 0, pod.nodeId)]);
}

const isKind = (kind: string) => (err: unknown) => err instanceof BerthError && err.kind === kind;

function storeSuite(open: () => Promise<Harness>): void {
  let h: Harness;
  let store: Store;
  before(async () => {
    h = await open();
    store = h.store;
  });
  after(async () => {
    await h?.cleanup();
  });

  describe('pods', () => {
    it('creates a pod with version 1 and its instances, and reads it back', async () => {
      const owner = newOwner();
      const pod = podOf(owner);
      const spec = specOf('nginx:1.27');
      const created = await store.createPod(pod, spec, [instanceOf(pod.id, 0), instanceOf(pod.id, 1)]);
      assert.equal(created.pod.specVersion, 1);
      assert.deepEqual(created.instances.map((i) => [i.id, i.specVersion]), [
        [instanceIdOf(pod.id, 0), 1],
        [instanceIdOf(pod.id, 1), 1],
      ]);
      const read = await store.getPod(pod.id);
      assert.deepEqual(read, created);
      assert.equal(read?.spec.containers[0]?.image, 'nginx:1.27');
      assert.ok(read.pod.revision >= Math.max(...read.instances.map((i) => i.revision)));
      assert.equal(await store.getPod(newPodId()), undefined);
    });

    it('refuses a second pod with the same id', async () => {
      const owner = newOwner();
      const pod = podOf(owner);
      await store.createPod(pod, specOf(), []);
      await assert.rejects(store.createPod(pod, specOf(), []), isKind('CONFLICT'));
    });

    it('lists in creation order with filters, a cursor and a limit', async () => {
      const owner = newOwner();
      const node = newNodeId();
      const a = await createPod(store, owner, { name: 'a', nodeId: node }, 'img/a:1');
      const b = await createPod(store, owner, { name: 'b', status: 'RUNNING' }, 'img/b:1');
      const c = await createPod(store, owner, { name: 'c', status: 'RUNNING', nodeId: node }, 'img/a:1');
      const d = await createPod(store, owner, { name: 'd', status: 'EXITED' });
      await createPod(store, newOwner(), { name: 'a' });
      const ids = (list: { pod: Pod }[]) => list.map((x) => x.pod.id);

      assert.deepEqual(ids(await store.listPods({ owner })), [a.pod.id, b.pod.id, c.pod.id, d.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, limit: 2 })), [a.pod.id, b.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, after: b.pod.id })), [c.pod.id, d.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, after: a.pod.id, limit: 1 })), [b.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, status: ['RUNNING'] })), [b.pod.id, c.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, name: 'a' })), [a.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, nodeId: node })), [a.pod.id, c.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, image: 'img/a:1' })), [a.pod.id, c.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, image: 'img/a:1', limit: 1 })), [a.pod.id]);
      assert.deepEqual(ids(await store.listPods({ owner, image: 'img/a' })), []);
      assert.deepEqual(ids(await store.listPods({ owner, ids: [d.pod.id, a.pod.id] })), [a.pod.id, d.pod.id]);
      assert.deepEqual(await store.listPods({ owner, ids: [] }), []);

      // The Marathon path of the current version: a later version under another path moves the pod.
      const path = `/team/${owner}`;
      await store.addPodVersion(b.pod.id, { ...specOf('img/b:1'), marathon: { id: path } });
      assert.deepEqual(ids(await store.listPods({ owner, marathonPath: path })), [b.pod.id]);
      await store.addPodVersion(b.pod.id, { ...specOf('img/b:1'), marathon: { id: `${path}/moved` } });
      assert.deepEqual(ids(await store.listPods({ owner, marathonPath: path })), []);
      assert.deepEqual(ids(await store.listPods({ owner, marathonPath: `${path}/moved` })), [b.pod.id]);

      assert.equal(await store.countPods({ owner }), 4);
      assert.equal(await store.countPods({ owner, image: 'img/a:1' }), 2);
      assert.equal(await store.countPods({ owner, status: ['EXITED'] }), 1);
      assert.equal(await store.countPods({ owner, limit: 1 }), 4);

      const listed = await store.listPods({ owner, ids: [c.pod.id] });
      assert.deepEqual(listed, [c]);
    });

    it('pages through pods created at the same instant by id', async () => {
      const owner = newOwner();
      const at = tick();
      for (let i = 0; i < 5; i++) await createPod(store, owner, { createdAt: at });
      const all = (await store.listPods({ owner })).map((x) => x.pod.id);
      assert.deepEqual(all, [...all].sort());
      const seen: PodId[] = [];
      let cursor: PodId | undefined;
      for (;;) {
        const page = await store.listPods({ owner, limit: 2, after: cursor });
        if (page.length === 0) break;
        seen.push(...page.map((x) => x.pod.id));
        cursor = page.at(-1)?.pod.id;
      }
      assert.deepEqual(seen, all);
    });

    it('leaves terminated pods out unless asked for', async () => {
      const owner = newOwner();
      const live = await createPod(store, owner);
      const gone = await createPod(store, owner, { status: 'TERMINATED', desiredStatus: 'TERMINATED' });
      const ids = async (status?: PodStatus[], includeTerminated?: boolean) =>
        (await store.listPods({ owner, status, includeTerminated })).map((x) => x.pod.id);
      assert.deepEqual(await ids(), [live.pod.id]);
      assert.deepEqual(await ids(undefined, true), [live.pod.id, gone.pod.id]);
      assert.deepEqual(await ids(['TERMINATED']), [gone.pod.id]);
      assert.equal(await store.countPods({ owner }), 1);
      assert.equal(await store.countPods({ owner, includeTerminated: true }), 2);
      // Being terminated (its node not done yet): out of the lists already.
      const going = await createPod(store, owner, { status: 'RUNNING', desiredStatus: 'TERMINATED' });
      assert.deepEqual(await ids(), [live.pod.id]);
      assert.deepEqual(await ids(undefined, true), [live.pod.id, gone.pod.id, going.pod.id]);
    });

    it('keeps version 1 and the newest versions, and pages them', async () => {
      const { pod, spec } = await createPod(store, newOwner());
      for (let i = 2; i <= 12; i++) assert.equal(await store.addPodVersion(pod.id, { ...spec, name: `v${i}` }, 5), i);
      const all = await store.listPodVersions(pod.id);
      assert.deepEqual(all.map((v) => v.version), [1, 8, 9, 10, 11, 12]);
      assert.deepEqual((await store.listPodVersions(pod.id, { after: 8, limit: 2 })).map((v) => v.version), [9, 10]);
      assert.equal((await store.getPod(pod.id))?.pod.specVersion, 12);
    });

    it('updates only the fields a patch gives', async () => {
      const owner = newOwner();
      const { pod } = await createPod(store, owner, { statusMessage: 'pulling' });
      const node = newNodeId();
      const updated = await store.updatePod(pod.id, { status: 'RUNNING', nodeId: node });
      assert.equal(updated.status, 'RUNNING');
      assert.equal(updated.nodeId, node);
      assert.equal(updated.statusMessage, 'pulling');
      assert.equal(updated.name, pod.name);
      assert.ok(updated.revision > pod.revision);
      const cleared = await store.updatePod(pod.id, { statusMessage: null });
      assert.equal(cleared.statusMessage, null);
      assert.equal(cleared.nodeId, node);
      await assert.rejects(store.updatePod(newPodId(), { status: 'RUNNING' }), isKind('POD_NOT_FOUND'));
    });

    it("keeps a pod's lifetime fields: empty at create, set and cleared by a patch", async () => {
      const { pod } = await createPod(store, newOwner());
      assert.deepEqual([pod.keepAliveUntil, pod.lastStoppedAt, pod.lifetimeNote], [null, null, null]);
      const at = '2030-01-02T03:04:05.000Z';
      const set = await store.updatePod(pod.id, { keepAliveUntil: at, lastStoppedAt: at, lifetimeNote: 'stopped by the idle policy' });
      assert.deepEqual([set.keepAliveUntil, set.lastStoppedAt, set.lifetimeNote], [at, at, 'stopped by the idle policy']);
      const read = (await store.getPod(pod.id))!.pod;
      assert.deepEqual([read.keepAliveUntil, read.lastStoppedAt, read.lifetimeNote], [at, at, 'stopped by the idle policy']);
      const cleared = await store.updatePod(pod.id, { lifetimeNote: null });
      assert.deepEqual([cleared.keepAliveUntil, cleared.lifetimeNote], [at, null]);
    });

    it('adds versions and keeps them after the pod is deleted', async () => {
      const owner = newOwner();
      const { pod } = await createPod(store, owner, {}, 'app:1');
      assert.equal(await store.addPodVersion(pod.id, specOf('app:2')), 2);
      assert.equal(await store.addPodVersion(pod.id, specOf('app:3')), 3);
      const detail = await store.getPod(pod.id);
      assert.equal(detail?.pod.specVersion, 3);
      assert.equal(detail?.spec.containers[0]?.image, 'app:3');
      assert.equal(detail?.instances[0]?.specVersion, 1, 'rolling instances forward is the controller\'s work');

      await store.deletePod(pod.id);
      assert.equal(await store.getPod(pod.id), undefined);
      assert.equal(await store.getInstance(instanceIdOf(pod.id, 0)), undefined);
      const versions = await store.listPodVersions(pod.id);
      assert.deepEqual(versions.map((v) => [v.version, v.spec.containers[0]?.image]), [
        [1, 'app:1'],
        [2, 'app:2'],
        [3, 'app:3'],
      ]);
      assert.equal((await store.getPodVersion(pod.id, 2))?.spec.containers[0]?.image, 'app:2');
      assert.equal(await store.getPodVersion(pod.id, 4), undefined);

      await assert.rejects(store.deletePod(pod.id), isKind('POD_NOT_FOUND'));
      await assert.rejects(store.addPodVersion(pod.id, specOf()), isKind('POD_NOT_FOUND'));
    });

    it('lists each pod in its latest state, as frozen shared snapshots', async () => {
      const owner = newOwner();
      const { pod, instances } = await createPod(store, owner);
      const first = await store.listPods({ owner });
      assert.ok(Object.isFrozen(first[0]?.pod) && Object.isFrozen(first[0]?.spec.containers[0]));
      assert.throws(() => {
        (first[0]!.pod as { status: string }).status = 'RUNNING';
      }, TypeError);

      await store.updateInstance(instances[0]!.id, { goal: 'stopped' });
      await store.updatePod(pod.id, { statusMessage: 'stopping' });
      await store.addPodVersion(pod.id, specOf('next:2'));
      const [again] = await store.listPods({ owner });
      assert.equal(again?.instances[0]?.goal, 'stopped');
      assert.equal(again?.pod.statusMessage, 'stopping');
      assert.equal(again?.spec.containers[0]?.image, 'next:2');
      assert.deepEqual(again, await store.getPod(pod.id));
    });

    it('lists anew after every kind of write, whichever the filter, owner or page', async () => {
      // A list is kept per filter while the store revision stays where it was read: each write
      // below must show in the next list of every filter it touches.
      const owner = newOwner();
      const other = newOwner();
      const a = await createPod(store, owner, { name: 'a' });
      const lists = {
        mine: () => store.listPods({ owner }),
        all: () => store.listPods({}),
        running: () => store.listPods({ owner, status: ['RUNNING'] }),
        page: () => store.listPods({ owner, limit: 1 }),
        after: () => store.listPods({ owner, after: a.pod.id }),
        theirs: () => store.listPods({ owner: other }),
      };
      const ids = (l: { pod: Pod }[]) => l.map((x) => x.pod.id);
      const mine = await lists.mine();
      assert.deepEqual(ids(mine), [a.pod.id]);
      // Nothing written between two lists: the same frozen details, in an array of the caller's own.
      const again = await lists.mine();
      assert.equal(again[0], mine[0]);
      assert.notEqual(again, mine);
      again.pop();
      assert.deepEqual(ids(await lists.mine()), [a.pod.id]);
      for (const l of Object.values(lists)) await l();

      const b = await createPod(store, owner, { name: 'b' });
      assert.deepEqual(ids(await lists.mine()), [a.pod.id, b.pod.id]);
      assert.ok(ids(await lists.all()).includes(b.pod.id));
      assert.deepEqual(ids(await lists.after()), [b.pod.id]);
      assert.deepEqual(ids(await lists.page()), [a.pod.id]);

      await store.updatePod(b.pod.id, { status: 'RUNNING' });
      assert.deepEqual(ids(await lists.running()), [b.pod.id]);
      assert.equal((await lists.all()).find((d) => d.pod.id === b.pod.id)?.pod.status, 'RUNNING');

      await store.addPodVersion(a.pod.id, specOf('next:2'));
      assert.equal((await lists.page())[0]?.spec.containers[0]?.image, 'next:2');

      await store.updateInstance(a.instances[0]!.id, { goal: 'stopped' });
      assert.equal((await lists.mine())[0]?.instances[0]?.goal, 'stopped');
      await store.deleteInstance(a.instances[0]!.id);
      assert.deepEqual((await lists.mine())[0]?.instances, []);
      await store.insertInstance({ ...instanceOf(a.pod.id, 1), specVersion: 2 });
      assert.deepEqual((await lists.page())[0]?.instances.map((i) => i.ordinal), [1]);

      const c = await createPod(store, other, { name: 'c' });
      assert.deepEqual(ids(await lists.theirs()), [c.pod.id]);
      assert.deepEqual(ids(await lists.mine()), [a.pod.id, b.pod.id]);

      await store.deletePod(a.pod.id);
      assert.deepEqual(ids(await lists.mine()), [b.pod.id]);
      assert.deepEqual(ids(await lists.after()), [b.pod.id]);
      assert.deepEqual(ids(await lists.page()), [b.pod.id]);
      assert.ok(!ids(await lists.all()).includes(a.pod.id));

      // A transaction's own writes show in its lists, and once it commits in everyone's.
      await store.transaction(async (tx) => {
        await tx.updatePod(b.pod.id, { name: 'renamed' });
        assert.equal((await tx.listPods({ owner }))[0]?.pod.name, 'renamed');
      });
      assert.equal((await lists.mine())[0]?.pod.name, 'renamed');
    });

    it('keeps a deleted pod usable as a list cursor', async () => {
      const owner = newOwner();
      const a = await createPod(store, owner);
      const b = await createPod(store, owner);
      const c = await createPod(store, owner);
      await store.deletePod(b.pod.id);
      assert.deepEqual((await store.listPods({ owner, after: b.pod.id })).map((x) => x.pod.id), [c.pod.id]);
      assert.deepEqual((await store.listPods({ owner })).map((x) => x.pod.id), [a.pod.id, c.pod.id]);
      await assert.rejects(store.listPods({ owner, after: newPodId() }), isKind('VALIDATION'));
    });
  });

  describe('instances and the change feed', () => {
    it('inserts, updates and deletes instances, bumping revisions', async () => {
      const owner = newOwner();
      const node = newNodeId();
      const { pod } = await store.createPod(podOf(owner), specOf(), []);
      const inserted = await store.insertInstance({ ...instanceOf(pod.id, 0, node), specVersion: 1 });
      assert.ok(inserted.revision > pod.revision);
      assert.equal((await store.getPod(pod.id))?.pod.revision, inserted.revision);

      const observed = {
        state: 'running' as const,
        message: null,
        exitCode: null,
        ports: { '8888': 32768 },
        containers: [],
        pull: null,
        lastLogLines: [],
        startedAt: tick(),
        restartCount: 0,
        observedSpecVersion: 1,
        observedResetGeneration: 0,
        observedRestartGeneration: 0,
        disk: null,
        updatedAt: tick(),
      };
      const updated = await store.updateInstance(inserted.id, { observed, gpuUuids: ['GPU-1'] });
      assert.deepEqual(updated.observed, observed);
      assert.deepEqual(updated.gpuUuids, ['GPU-1']);
      assert.equal(updated.nodeId, node);
      assert.equal(updated.goal, 'running');
      assert.ok(updated.revision > inserted.revision);
      assert.deepEqual(await store.getInstance(inserted.id), updated);
      assert.equal((await store.getPod(pod.id))?.pod.revision, updated.revision);

      assert.deepEqual((await store.listInstances({ nodeId: node })).map((i) => i.id), [inserted.id]);
      assert.deepEqual((await store.listInstances({ podId: pod.id })).map((i) => i.id), [inserted.id]);
      assert.deepEqual(await store.listInstanceIds({ nodeId: node }), [inserted.id]);
      assert.deepEqual(await store.listInstanceIds({ nodeId: newNodeId() }), []);
      assert.deepEqual((await store.listInstances({ nodeId: node, ids: [inserted.id] })).map((i) => i.id), [inserted.id]);
      assert.deepEqual(await store.listInstances({ nodeId: newNodeId(), ids: [inserted.id] }), []);
      assert.deepEqual(await store.listInstances({ ids: [] }), []);

      await store.deleteInstance(inserted.id);
      assert.equal(await store.getInstance(inserted.id), undefined);
      await assert.rejects(store.updateInstance(inserted.id, { goal: 'stopped' }), isKind('NOT_FOUND'));
      await assert.rejects(store.deleteInstance(inserted.id), isKind('NOT_FOUND'));
      await assert.rejects(store.insertInstance({ ...instanceOf(newPodId(), 0), specVersion: 1 }), isKind('POD_NOT_FOUND'));
    });

    it('records every write in order, with the node of instance changes', async () => {
      const owner = newOwner();
      const nodeA = newNodeId();
      const nodeB = newNodeId();
      const start = await store.revision();
      const { pod, instances } = await createPod(store, owner, { nodeId: nodeA });
      const instanceId = instances[0]!.id;
      await store.updateInstance(instanceId, { nodeId: nodeB });
      await store.updatePod(pod.id, { status: 'RUNNING' });
      await store.deletePod(pod.id);

      const changes = await store.changesSince(start);
      const mine = changes.filter((c) => c.id === pod.id || c.id === instanceId);
      assert.deepEqual(mine.map((c) => [c.kind, c.nodeId]), [
        ['pod', null],
        ['instance', nodeA], // created on A
        ['instance', nodeA], // moved off A: A's agent must hear
        ['instance', nodeB], // moved to B
        ['pod', null],
        ['pod', null], // deleted
        ['instance', nodeB], // its instance went with it
      ]);
      const revisions = changes.map((c) => c.revision);
      assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y));
      assert.ok(revisions.every((r) => r > start));
      assert.equal(await store.revision(), revisions.at(-1));
      assert.equal((await store.changesSince(start, 2)).length, 2);
      assert.deepEqual(await store.changesSince(await store.revision()), []);
    });

    it('prunes the change feed to its newest entries, keeping the revision', async () => {
      const owner = newOwner();
      for (let i = 0; i < 3; i++) await createPod(store, owner, {});
      const top = await store.revision();
      assert.ok((await store.oldestRevision()) < top);
      const dropped = await store.pruneChanges(2);
      assert.ok(dropped > 0);
      assert.equal(await store.revision(), top, 'the revision does not go back');
      assert.equal(await store.oldestRevision(), top - 1);
      assert.deepEqual((await store.changesSince(0)).map((c) => c.revision), [top - 1, top]);
      const { pod } = await createPod(store, owner, {});
      assert.ok((await store.revision()) > top, 'revisions go on after a prune');
      assert.ok((await store.changesSince(top)).some((c) => c.id === pod.id));
    });

    it('announces changes only after the transaction commits', async () => {
      const owner = newOwner();
      const heard: Change[] = [];
      const stop = store.onChange((c) => heard.push(c));
      try {
        const pod = podOf(owner);
        const result = await store.transaction(async (tx) => {
          await tx.createPod(pod, specOf(), [instanceOf(pod.id, 0)]);
          // Nested: joins the same transaction.
          await tx.transaction((inner) => inner.updatePod(pod.id, { status: 'STARTING' }));
          assert.equal(heard.length, 0, 'nothing is announced before the commit');
          return 'done';
        });
        assert.equal(result, 'done');
        assert.deepEqual(heard.map((c) => c.kind), ['pod', 'instance', 'pod']);
        assert.equal((await store.getPod(pod.id))?.pod.status, 'STARTING');

        heard.length = 0;
        await store.updatePod(pod.id, { status: 'RUNNING' });
        assert.deepEqual(heard.map((c) => [c.kind, c.id]), [['pod', pod.id]]);
      } finally {
        stop();
      }
      await store.updatePod((await createPod(store, owner)).pod.id, { status: 'RUNNING' });
      assert.equal(heard.length, 1, 'an unsubscribed listener hears nothing more');
    });

    it('forgets what a rolled-back transaction listed', async () => {
      const owner = newOwner();
      const { pod } = await createPod(store, owner);
      await store.listPods({ owner });
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.updatePod(pod.id, { statusMessage: 'never committed' });
          assert.equal((await tx.listPods({ owner }))[0]?.pod.statusMessage, 'never committed');
          throw new Error('roll back');
        }),
        /roll back/,
      );
      // The next write may be handed the rolled-back revision again (SQLite does); the list must
      // show what was committed, not what the transaction saw.
      await store.updatePod(pod.id, { statusMessage: 'committed' });
      assert.equal((await store.listPods({ owner }))[0]?.pod.statusMessage, 'committed');
    });

    it('a rolled-back transaction writes nothing and announces nothing', async () => {
      const owner = newOwner();
      const heard: Change[] = [];
      const stop = store.onChange((c) => heard.push(c));
      const before = await store.revision();
      const pod = podOf(owner);
      try {
        await assert.rejects(
          store.transaction(async (tx) => {
            await tx.createPod(pod, specOf(), [instanceOf(pod.id, 0)]);
            throw new Error('changed my mind');
          }),
          /changed my mind/,
        );
      } finally {
        stop();
      }
      assert.deepEqual(heard, []);
      assert.equal(await store.getPod(pod.id), undefined);
      assert.deepEqual(await store.listPods({ owner }), []);
      assert.deepEqual(await store.listPodVersions(pod.id), []);
      assert.equal(await store.revision(), before);
    });

    it('keeps announcing to other listeners when one throws', async () => {
      const heard: Change[] = [];
      const stopBad = store.onChange(() => {
        throw new Error('listener bug');
      });
      const stopGood = store.onChange((c) => heard.push(c));
      try {
        await createPod(store, newOwner());
        assert.equal(heard.length, 2);
      } finally {
        stopBad();
        stopGood();
      }
    });
  });

  describe('nodes', () => {
    it('upserts nodes, keeping the first registration time', async () => {
      const id = newNodeId();
      const first = {
        id,
        name: `node-${id}`,
        publicIp: '10.0.0.5',
        labels: { zone: 'a' },
        capacity: { cpus: 8, memoryMb: 32768, gpus: [{ index: 0, uuid: 'GPU-x', name: 'NVIDIA H100', memoryMb: 81559 }], gpusSimulated: true },
        agentVersion: '0.1.0',
        registeredAt: tick(),
        lastSeenAt: tick(),
      };
      const start = await store.revision();
      const created = await store.upsertNode(first);
      assert.deepEqual({ ...created, revision: 0 }, { ...first, cordoned: false, notReadySince: null, revision: 0 });
      assert.ok(created.revision > start);

      const again = await store.upsertNode({ ...first, publicIp: '10.0.0.6', registeredAt: tick(), agentVersion: '0.2.0' });
      assert.equal(again.publicIp, '10.0.0.6');
      assert.equal(again.agentVersion, '0.2.0');
      assert.equal(again.registeredAt, first.registeredAt);
      assert.ok(again.revision > created.revision);
      assert.deepEqual(await store.getNode(id), again);
      assert.ok((await store.listNodes()).some((n) => n.id === id));
      const changes = (await store.changesSince(start)).filter((c) => c.id === id);
      assert.deepEqual(changes.map((c) => [c.kind, c.nodeId]), [['node', id], ['node', id]]);

      const seen = tick();
      await store.touchNode(id, seen);
      assert.equal((await store.getNode(id))?.lastSeenAt, seen);
      await assert.rejects(store.touchNode(newNodeId(), seen), isKind('NOT_FOUND'));
      assert.equal(await store.getNode(newNodeId()), undefined);

      // The lifecycle: a recorded change each; a cordon survives the agent registering again.
      const before = await store.revision();
      const cordoned = await store.setNodeState(id, { cordoned: true, notReadySince: seen });
      assert.equal(cordoned.cordoned, true);
      assert.equal(cordoned.notReadySince, seen);
      assert.ok(cordoned.revision > before);
      const registered = await store.upsertNode({ ...first, notReadySince: null });
      assert.equal(registered.cordoned, true, 'registering again keeps the cordon');
      assert.equal(registered.notReadySince, null);
      assert.equal((await store.setNodeState(id, { cordoned: false })).cordoned, false);
      await assert.rejects(store.setNodeState(newNodeId(), { cordoned: true }), isKind('NOT_FOUND'));
    });
  });

  describe('owned records', () => {
    it('keeps network volumes', async () => {
      const owner = newOwner();
      const v = { id: newNetworkVolumeId(), owner, name: 'data', sizeGb: 100, dataCenterId: 'local', nodeId: null, createdAt: tick() };
      await store.createNetworkVolume(v);
      assert.deepEqual(await store.getNetworkVolume(v.id), v);
      assert.deepEqual(await store.listNetworkVolumes(owner), [v]);
      assert.deepEqual(await store.updateNetworkVolume(v.id, { sizeGb: 200 }), { ...v, sizeGb: 200 });
      assert.deepEqual(await store.updateNetworkVolume(v.id, {}), { ...v, sizeGb: 200 });
      await store.deleteNetworkVolume(v.id);
      assert.equal(await store.getNetworkVolume(v.id), undefined);
      await assert.rejects(store.updateNetworkVolume(v.id, { name: 'x' }), isKind('NOT_FOUND'));
      await assert.rejects(store.deleteNetworkVolume(v.id), isKind('NOT_FOUND'));
    });

    it('binds a network volume to the first node that asks, once', async () => {
      const owner = newOwner();
      const v = { id: newNetworkVolumeId(), owner, name: 'data', sizeGb: 10, dataCenterId: 'local', nodeId: null, createdAt: tick() };
      await store.createNetworkVolume(v);
      const [a, b] = [newNodeId(), newNodeId()];
      assert.deepEqual(await store.bindNetworkVolume(v.id, a), { ...v, nodeId: a });
      assert.deepEqual(await store.bindNetworkVolume(v.id, b), { ...v, nodeId: a });
      assert.deepEqual(await store.getNetworkVolume(v.id), { ...v, nodeId: a });
      await store.deleteNetworkVolume(v.id);
      await assert.rejects(store.bindNetworkVolume(v.id, a), isKind('NOT_FOUND'));
    });

    it('keeps template names unique per owner', async () => {
      const owner = newOwner();
      const t = { id: newTemplateId(), owner, name: 'jupyter', pod: { image: 'jupyter:latest', ports: ['8888/http'] }, readme: '# hi', createdAt: tick(), updatedAt: tick() };
      await store.createTemplate(t);
      assert.deepEqual(await store.getTemplate(t.id), t);
      await assert.rejects(store.createTemplate({ ...t, id: newTemplateId() }), (err: unknown) => {
        assert.ok(err instanceof BerthError);
        assert.equal(err.kind, 'CONFLICT');
        assert.equal(err.message, 'a template named jupyter already exists');
        return true;
      });
      const other = { ...t, id: newTemplateId(), owner: newOwner() };
      await store.createTemplate(other);

      const second = { ...t, id: newTemplateId(), name: 'comfy', createdAt: tick() };
      await store.createTemplate(second);
      await assert.rejects(store.updateTemplate(second.id, { name: 'jupyter' }), isKind('CONFLICT'));
      const renamed = await store.updateTemplate(second.id, { name: 'comfyui', readme: 'new' });
      assert.equal(renamed.name, 'comfyui');
      assert.equal(renamed.readme, 'new');
      assert.deepEqual(renamed.pod, t.pod);
      assert.deepEqual((await store.listTemplates(owner)).map((x) => x.id), [t.id, second.id]);
      await store.deleteTemplate(t.id);
      await assert.rejects(store.deleteTemplate(t.id), isKind('NOT_FOUND'));
      await assert.rejects(store.updateTemplate(t.id, { readme: '' }), isKind('NOT_FOUND'));
    });

    it('keeps registry credentials', async () => {
      const owner = newOwner();
      const r = { id: newRegistryAuthId(), owner, name: 'ghcr', username: 'me', passwordSealed: 'sealed:abc', createdAt: tick() };
      await store.createRegistryAuth(r);
      assert.deepEqual(await store.getRegistryAuth(r.id), r);
      assert.deepEqual(await store.listRegistryAuths(owner), [r]);
      await store.deleteRegistryAuth(r.id);
      assert.equal(await store.getRegistryAuth(r.id), undefined);
      await assert.rejects(store.deleteRegistryAuth(r.id), isKind('NOT_FOUND'));
    });

    it('keeps SSH keys per owner, with the user who registered each (none for a team key)', async () => {
      const owner = newOwner();
      const k = { id: newSshKeyId(), owner, user: null, name: 'laptop', publicKey: 'ssh-ed25519 AAAA test', fingerprint: 'SHA256:abc', createdAt: tick() };
      await store.createSshKey(k);
      const ann = { ...k, id: newSshKeyId(), user: 'ann', fingerprint: 'SHA256:def', createdAt: tick() };
      await store.createSshKey(ann);
      // A key given without a user is read back with none.
      const { user: _user, ...noUser } = { ...k, id: newSshKeyId(), fingerprint: 'SHA256:ghi', createdAt: tick() };
      await store.createSshKey(noUser);
      assert.deepEqual(await store.listSshKeys(owner), [k, ann, { ...noUser, user: null }]);
      await store.deleteSshKey(ann.id);
      await store.deleteSshKey(noUser.id);
      assert.deepEqual(await store.listSshKeys(newOwner()), []);
      await store.deleteSshKey(k.id);
      assert.deepEqual(await store.listSshKeys(owner), []);
      await assert.rejects(store.deleteSshKey(k.id), isKind('NOT_FOUND'));
    });

    it('keeps deployments while they run', async () => {
      const id = randomBytes(8).toString('hex');
      const d = { id, path: `/team/${id}`, podId: `pod${id}`, action: 'StartPod' as const, version: tick(), toVersion: 1, fromVersion: null, startedAt: tick() };
      await store.putDeployment(d);
      assert.deepEqual((await store.listDeployments()).find((x) => x.id === id), d);
      const rolled = { ...d, action: 'RestartPod' as const, toVersion: 3, fromVersion: 2 };
      await store.putDeployment(rolled);
      assert.deepEqual((await store.listDeployments()).filter((x) => x.id === id), [rolled]);
      await store.deleteDeployment(id);
      await store.deleteDeployment(id);
      assert.equal((await store.listDeployments()).find((x) => x.id === id), undefined);
    });

    it('finds API keys by hash', async () => {
      const owner = newOwner();
      const hash = randomBytes(32).toString('hex');
      const k = { id: newApiKeyId(), owner, name: 'ci', hash, prefix: 'berth_ab', admin: true, createdAt: tick(), lastUsedAt: null };
      await store.createApiKey(k);
      assert.deepEqual(await store.findApiKeyByHash(hash), k);
      assert.equal(await store.findApiKeyByHash('nope'), undefined);
      await assert.rejects(store.createApiKey({ ...k, id: newApiKeyId() }), isKind('CONFLICT'));
      const used = tick();
      await store.touchApiKey(k.id, used);
      assert.deepEqual(await store.listApiKeys(owner), [{ ...k, lastUsedAt: used }]);
      await store.deleteApiKey(k.id);
      assert.equal(await store.findApiKeyByHash(hash), undefined);
      await assert.rejects(store.touchApiKey(k.id, used), isKind('NOT_FOUND'));
    });

    it('keeps teams, their members with a role, and the audit log newest first', async () => {
      const name = `team-${newOwner()}`.toLowerCase().slice(0, 40);
      const team = { name, policy: {}, quota: {}, createdAt: tick() };
      await store.createTeam(team);
      await assert.rejects(store.createTeam(team), isKind('CONFLICT'));
      await store.setTeamPolicy(name, { hostNetwork: true, capabilities: ['NET_ADMIN'] });
      await store.setTeamQuota(name, { pods: 3, gpusByType: { 'NVIDIA A100': 2 } });
      assert.deepEqual(await store.getTeam(name), { ...team, policy: { hostNetwork: true, capabilities: ['NET_ADMIN'] }, quota: { pods: 3, gpusByType: { 'NVIDIA A100': 2 } } });
      assert.ok((await store.listTeams()).some((t) => t.name === name));
      await store.setMember({ team: name, user: 'ann', role: 'owner', createdAt: tick() });
      await store.setMember({ team: name, user: 'vic', role: 'member', createdAt: tick() });
      await store.setMember({ team: name, user: 'vic', role: 'viewer', createdAt: tick() });
      assert.equal(await store.memberRole(name, 'vic'), 'viewer');
      assert.deepEqual((await store.listMembers(name)).map((m) => `${m.user}:${m.role}`), ['ann:owner', 'vic:viewer']);
      await store.removeMember(name, 'vic');
      assert.equal(await store.memberRole(name, 'vic'), undefined);
      await assert.rejects(store.removeMember(name, 'vic'), isKind('NOT_FOUND'));
      await assert.rejects(store.setMember({ team: 'no-such-team', user: 'x', role: 'member', createdAt: tick() }), isKind('NOT_FOUND'));
      const entry = (n: number) => ({ id: `${n}`, at: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(), team: name, user: 'ann', keyId: null, action: `act-${n}`, objectType: 'pod', objectId: 'p', detail: { n } });
      for (const n of [1, 2, 3]) await store.appendAudit(entry(n));
      assert.deepEqual(await store.listAudit({ team: name, limit: 2 }), [entry(3), entry(2)]);
      assert.deepEqual(await store.listAudit({ team: name, limit: 5, before: entry(2).at }), [entry(1)]);
      assert.ok((await store.pruneAudit(entry(2).at)) >= 1, 'what is older than the cut goes');
      assert.deepEqual(await store.listAudit({ team: name, limit: 5 }), [entry(3), entry(2)]);
      const k = { id: newApiKeyId(), owner: name as OwnerId, name: 'ann', hash: `h-${name}`, prefix: 'berth_x', admin: false, user: 'ann', createdAt: tick(), lastUsedAt: null };
      await store.createApiKey(k);
      assert.deepEqual(await store.findApiKeyByHash(k.hash), k);
    });
  });

  describe('join tokens and node credentials', () => {
    const tokenOf = (over: Partial<JoinToken> = {}): JoinToken => {
      const id = newJoinTokenId();
      return { id, description: 'gpu boxes', labels: { 'berth.io/datacenter': 'eu-1' }, hash: `h-${id}`, maxUses: 2, uses: 0, expiresAt: null, revokedAt: null, createdAt: tick(), lastUsedAt: null, ...over };
    };

    it('keeps tokens by hash, takes their uses one at a time, revokes and prunes them', async () => {
      const t = await store.createJoinToken(tokenOf());
      assert.deepEqual(await store.findJoinTokenByHash(t.hash), t);
      assert.equal(await store.findJoinTokenByHash('nope'), undefined);
      await assert.rejects(store.createJoinToken({ ...t, id: newJoinTokenId() }), isKind('CONFLICT'));
      const at = tick();
      // Two joins racing for the last uses: exactly maxUses of them get one.
      const taken = await Promise.all([1, 2, 3].map(() => store.useJoinToken(t.id, at)));
      assert.equal(taken.filter(Boolean).length, 2);
      assert.deepEqual(await store.findJoinTokenByHash(t.hash), { ...t, uses: 2, lastUsedAt: at });

      const expired = await store.createJoinToken(tokenOf({ maxUses: null, expiresAt: '2001-01-01T00:00:00.000Z' }));
      assert.equal(await store.useJoinToken(expired.id, tick()), false, 'an expired token gives no use');
      const live = await store.createJoinToken(tokenOf({ maxUses: null, expiresAt: '2999-01-01T00:00:00.000Z' }));
      assert.equal(await store.useJoinToken(live.id, tick()), true);
      const revokedAt = tick();
      await store.revokeJoinToken(live.id, revokedAt);
      await store.revokeJoinToken(live.id, tick());
      assert.equal((await store.findJoinTokenByHash(live.hash))?.revokedAt, revokedAt, 'revoking again keeps the first time');
      assert.equal(await store.useJoinToken(live.id, tick()), false, 'a revoked token gives no use');
      await assert.rejects(store.revokeJoinToken(newJoinTokenId(), tick()), isKind('NOT_FOUND'));
      assert.ok((await store.listJoinTokens()).some((x) => x.id === live.id));

      assert.ok((await store.pruneJoinTokens('2002-01-01T00:00:00.000Z')) >= 1);
      assert.equal(await store.findJoinTokenByHash(expired.hash), undefined, 'long expired: forgotten');
      assert.ok(await store.findJoinTokenByHash(t.hash), 'a live token stays');
    });

    it("keeps node credentials by hash and deletes them with their node", async () => {
      const nodeId = newNodeId();
      await store.upsertNode({ id: nodeId, name: `n-${nodeId}`, publicIp: '10.0.0.9', labels: {}, capacity: { cpus: 1, memoryMb: 1024, gpus: [], gpusSimulated: false }, agentVersion: '0', registeredAt: tick(), lastSeenAt: tick() });
      const c = { id: newNodeCredentialId(), nodeId, hash: `c-${nodeId}`, tokenId: null, createdAt: tick(), lastUsedAt: null };
      await store.createNodeCredential(c);
      assert.deepEqual(await store.findNodeCredentialByHash(c.hash), c);
      await assert.rejects(store.createNodeCredential({ ...c, id: newNodeCredentialId() }), isKind('CONFLICT'));
      const used = tick();
      await store.touchNodeCredential(c.id, used);
      assert.equal((await store.findNodeCredentialByHash(c.hash))?.lastUsedAt, used);

      const start = await store.revision();
      await store.deleteNode(nodeId);
      assert.equal(await store.getNode(nodeId), undefined);
      assert.equal(await store.findNodeCredentialByHash(c.hash), undefined, 'the credential goes with its node');
      assert.deepEqual((await store.changesSince(start)).map((x) => [x.kind, x.id]), [['node', nodeId]]);
      await assert.rejects(store.deleteNode(nodeId), isKind('NOT_FOUND'));
    });
  });
}

describe('store on SQLite', () => {
  let dir: string;
  storeSuite(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-store-'));
    const store = await openStore({ dataDir: dir });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  });

  it('keeps its file in the data dir, in WAL mode, and reopens with the data', async () => {
    const own = await mkdtemp(join(tmpdir(), 'berth-store-'));
    try {
      const first = await openStore({ dataDir: own });
      const { pod } = await createPod(first, newOwner());
      await stat(join(own, SQLITE_FILE_NAME));
      // The write-ahead log exists while the database is open in WAL mode.
      await stat(join(own, `${SQLITE_FILE_NAME}-wal`));
      await first.close();
      const second = await openStore({ dataDir: own });
      assert.equal((await second.getPod(pod.id))?.pod.id, pod.id);
      await second.close();
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it('lists what another store on the same file wrote (another process, say)', async () => {
    const own = await mkdtemp(join(tmpdir(), 'berth-store-'));
    try {
      const writer = await openStore({ dataDir: own });
      const reader = await openStore({ dataDir: own });
      const owner = newOwner();
      const { pod } = await createPod(writer, owner);
      assert.equal((await reader.listPods({ owner }))[0]?.pod.status, 'PROVISIONING');
      await writer.updatePod(pod.id, { status: 'RUNNING' });
      assert.equal((await reader.listPods({ owner }))[0]?.pod.status, 'RUNNING');
      const second = await createPod(writer, owner);
      assert.deepEqual((await reader.listPods({ owner })).map((d) => d.pod.id), [pod.id, second.pod.id]);
      await writer.close();
      await reader.close();
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it('fills in the user of SSH keys from before 0009 where the audit log says who registered them', async () => {
    const own = await mkdtemp(join(tmpdir(), 'berth-store-'));
    try {
      const { db, dialect } = connect({ kind: 'sqlite', dataDir: own, busyTimeoutMs: 5000 });
      const migrated = await new Migrator({ db, provider: migrationProvider(dialect), migrationTableSchema: await dialect.migrationSchema(db) }).migrateTo('0008_audit_log');
      assert.equal(migrated.error, undefined);
      const old = db as unknown as Kysely<Record<string, Record<string, unknown>>>;
      const owner = newOwner();
      for (const id of ['k1', 'k2']) await old.insertInto('ssh_keys').values({ id, owner, name: id, public_key: 'ssh-ed25519 AAAA', fingerprint: `SHA256:${id}`, created_at: tick() }).execute();
      await old.insertInto('audit_log').values({ id: 'a1', at: tick(), team: owner, user_name: 'ann', key_id: 'x', action: 'POST /api/v1/ssh-keys', object_type: 'ssh-keys', object_id: 'k1', detail: '{}' }).execute();
      await db.destroy();
      const store = await openStore({ dataDir: own });
      assert.deepEqual((await store.listSshKeys(owner)).map((k) => [k.id, k.user]), [['k1', 'ann'], ['k2', null]]);
      await store.close();
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it('opens in memory without a data dir', async () => {
    const store = await openStore({});
    assert.equal(store.dialect, 'sqlite');
    await createPod(store, newOwner());
    assert.equal(await store.countPods({}), 1);
    await store.close();
  });

  it('refuses a database URL it cannot use', async () => {
    await assert.rejects(openStore({ databaseUrl: 'mysql://localhost/berth' }), isKind('VALIDATION'));
  });
});

const postgresUrl = process.env.BERTH_TEST_DATABASE_URL;
if (postgresUrl) {
  describe('store on PostgreSQL', () => {
    storeSuite(async () => {
      const { url, drop } = await postgresSchema(postgresUrl);
      try {
        const store = await openStore({ databaseUrl: url });
        assert.equal(store.dialect, 'postgres');
        return {
          store,
          cleanup: async () => {
            await store.close();
            await drop();
          },
        };
      } catch (err) {
        await drop();
        throw err;
      }
    });
  });
} else if (process.env.BERTH_TEST_REQUIRE_POSTGRES === '1') {
  describe('store on PostgreSQL', () => {
    it('has a database to run on', () => {
      assert.fail('BERTH_TEST_REQUIRE_POSTGRES=1 but BERTH_TEST_DATABASE_URL is not set');
    });
  });
} else {
  describe('store on PostgreSQL', { skip: 'set BERTH_TEST_DATABASE_URL to run the store tests on PostgreSQL' }, () => {});
}

/**
 * One set of pods behind four APIs: a pod made through the native API, RunPod's REST API or Marathon's
 * is the same pod, with the same id and status, in all of them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { containersOf, ensureSleeperImage, nativeStatus } from './support/runpod-fixtures.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface NativePod {
  id: string;
  status: string;
  desiredStatus: string;
  image: string;
  marathonId: string | null;
}
interface MarathonDefinition {
  id: string;
  version: string;
  containers: { name: string; image: { id: string }; environment?: Record<string, string>; resources: { cpus: number; mem: number } }[];
  scaling: { instances: number };
}
interface MarathonStatus {
  id: string;
  status: string;
  spec: MarathonDefinition;
  instances: { id: string; status: string; specReference: string }[];
}

describe('one pod, four APIs', () => {
  let t: TestServer;
  let image: string;
  before(async () => {
    image = await ensureSleeperImage();
    t = await startTestServer();
  });
  after(async () => t?.close());

  const v1 = <T,>(method: string, path: string, body?: unknown) => t.api<T>(method, `/runpod/v1${path}`, body);
  const v2 = <T,>(method: string, path: string, body?: unknown) => t.api<T>(method, `/runpod/v2${path}`, body);
  const m = <T,>(method: string, path: string, body?: unknown) => t.api<T>(method, `/marathon/v2${path}`, body);

  it('sees pods made through each API in every other, with one id and one status', async () => {
    const native = await t.api<NativePod>('POST', '/api/v1/pods', { name: 'native', image, volumeGb: 0 });
    assert.equal(native.status, 201, JSON.stringify(native.body));
    // Through v1: its CPU pods may ask for one vCPU, and this machine may have only two.
    const fromV1 = await v1<{ id: string }>('POST', '/pods', { name: 'via-v1', imageName: image, computeType: 'CPU', vcpuCount: 1, volumeInGb: 0 });
    assert.equal(fromV1.status, 201, JSON.stringify(fromV1.body));
    const fromMarathon = await m<{ id: string }>('POST', '/pods', {
      id: '/team/worker',
      containers: [{ name: 'main', image: { kind: 'DOCKER', id: image }, resources: { cpus: 0.1, mem: 64 } }],
      networks: [{ mode: 'container/bridge' }],
    });
    assert.equal(fromMarathon.status, 201, JSON.stringify(fromMarathon.body));

    // The Marathon pod, found natively by its path id.
    const all = (await t.api<{ pods: NativePod[] }>('GET', '/api/v1/pods?view=full')).body.pods;
    const marathonPod = all.find((p) => p.marathonId === '/team/worker');
    assert.ok(marathonPod, 'the native list holds the Marathon pod');
    const ids = [native.body.id, fromV1.body.id, marathonPod.id];
    for (const id of ids) await nativeStatus(t, id, 'RUNNING');

    // RunPod v1 and v2 list all three, with the native status.
    const v2Ids = (await v2<{ pods: { id: string; status: string }[] }>('GET', '/pods')).body.pods.map((p) => p.id).sort();
    assert.deepEqual(v2Ids, [...ids].sort());
    const v1Ids = (await v1<{ id: string }[]>('GET', '/pods')).body.map((p) => p.id).sort();
    assert.deepEqual(v1Ids, [...ids].sort());
    assert.equal((await v2<{ status: string; image: string }>('GET', `/pods/${marathonPod.id}`)).body.status, 'RUNNING');
    assert.equal((await v1<{ desiredStatus: string; image: string }>('GET', `/pods/${marathonPod.id}`)).body.image, image);

    // Marathon lists the others under /<podId>, STABLE while they run.
    const statuses = await waitFor('three STABLE pods through Marathon', async () => {
      const r = await m<MarathonStatus[]>('GET', '/pods/::status');
      return r.body.length === 3 && r.body.every((s) => s.status === 'STABLE') ? r.body : undefined;
    });
    assert.deepEqual(statuses.map((s) => s.id).sort(), ['/team/worker', `/${native.body.id}`, `/${fromV1.body.id}`].sort());
    const nativeThroughMarathon = (await m<MarathonStatus>('GET', `/pods/${native.body.id}::status`)).body;
    assert.equal(nativeThroughMarathon.spec.containers[0]?.image.id, image);
    assert.equal(nativeThroughMarathon.instances.length, 1);
    assert.equal(nativeThroughMarathon.instances[0]?.status, 'STABLE');

    // Deleting through Marathon terminates the RunPod pod; terminating through RunPod v2 deletes the Marathon one.
    assert.equal((await m('DELETE', `/pods/${fromV1.body.id}`)).status, 202);
    assert.equal((await v2<{ status: string }>('DELETE', `/pods/${marathonPod.id}`)).status, 204);
    for (const id of [fromV1.body.id, marathonPod.id]) {
      await nativeStatus(t, id, 'TERMINATED');
      assert.equal((await v2<{ status: string }>('GET', `/pods/${id}`)).body.status, 'TERMINATED');
    }
    assert.equal((await m('GET', '/pods/team/worker')).status, 404);
    assert.equal((await m('GET', `/pods/${fromV1.body.id}`)).status, 404);
    assert.equal((await m<MarathonStatus>('GET', `/pods/${native.body.id}`)).status, 200);
  });

  it('shows a Marathon pod changed through the native API as it now runs, under its Marathon id', async () => {
    const created = await m<MarathonDefinition>('POST', '/pods', {
      id: '/team/patched',
      containers: [{ name: 'main', image: { kind: 'DOCKER', id: image }, resources: { cpus: 0.1, mem: 64 }, environment: { STAGE: 'one' } }],
      networks: [{ mode: 'container/bridge' }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const all = (await t.api<{ pods: NativePod[] }>('GET', '/api/v1/pods?view=full')).body.pods;
    const pod = all.find((p) => p.marathonId === '/team/patched' && p.desiredStatus !== 'TERMINATED');
    assert.ok(pod, 'the native list holds the Marathon pod');
    await nativeStatus(t, pod.id, 'RUNNING');

    // A change of the container's environment through the native API.
    const patched = await t.api<NativePod>('PATCH', `/api/v1/pods/${pod.id}`, {
      containers: [{ name: 'main', image, env: { STAGE: 'two' }, resources: { cpus: 0.1, memoryMb: 64 } }],
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.marathonId, '/team/patched');

    // Marathon shows the pod as it now is, under the same path id; the version before keeps its definition.
    const shown = await m<MarathonDefinition>('GET', '/pods/team/patched');
    assert.equal(shown.status, 200, JSON.stringify(shown.body));
    assert.equal(shown.body.id, '/team/patched');
    assert.deepEqual(shown.body.containers[0]?.environment, { STAGE: 'two' });
    assert.equal(shown.body.containers[0]?.image.id, image);
    assert.equal(shown.body.containers[0]?.resources.mem, 64);
    const versions = (await m<string[]>('GET', '/pods/team/patched::versions')).body;
    assert.equal(versions.length, 2);
    const before = (await m<MarathonDefinition>('GET', `/pods/team/patched::versions/${versions[0]}`)).body;
    assert.deepEqual(before.containers[0]?.environment, { STAGE: 'one' });
    assert.equal(shown.body.version, versions[1]);

    // The instance converges on the change: STABLE at the new version, its container with the new variable.
    const status = await waitFor('the changed pod STABLE at its new version', async () => {
      const r = await m<MarathonStatus>('GET', '/pods/team/patched::status');
      const [inst] = r.body.instances;
      return r.body.status === 'STABLE' && r.body.instances.length === 1 && inst?.status === 'STABLE' && inst.specReference.endsWith(versions[1]!) ? r.body : undefined;
    }, 60_000);
    assert.deepEqual(status.spec.containers[0]?.environment, { STAGE: 'two' });
    const docker = new Docker();
    await waitFor('a running container with STAGE=two', async () => {
      for (const c of await containersOf(pod.id, docker)) {
        if (c.State !== 'running') continue;
        const env = (await docker.getContainer(c.Id).inspect()).Config.Env ?? [];
        if (env.includes('STAGE=two')) return true;
      }
      return undefined;
    });

    assert.equal((await m('DELETE', '/pods/team/patched')).status, 202);
    await nativeStatus(t, pod.id, 'TERMINATED');
  });
});

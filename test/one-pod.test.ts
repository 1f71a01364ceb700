/**
 * One set of pods behind four APIs: a pod made through the native API, RunPod's REST API or Marathon's
 * is the same pod, with the same id and status, in all of them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ensureSleeperImage, nativeStatus } from './support/runpod-fixtures.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface NativePod {
  id: string;
  status: string;
  desiredStatus: string;
  image: string;
  marathonId: string | null;
}
interface MarathonStatus {
  id: string;
  status: string;
  spec: { id: string; containers: { name: string; image: { id: string } }[]; scaling: { instances: number } };
  instances: { id: string; status: string }[];
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
});

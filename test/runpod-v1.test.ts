/**
 * RunPod REST v1 at /runpod/v1 on a real server and Docker daemon, every answer checked against
 * RunPod's published v1 schemas (test/support/runpod-schemas.ts), and one set of pods shared by the
 * native API, v1 and v2.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { containersOf, ensureSleeperImage, nativeStatus } from './support/runpod-fixtures.js';
import * as C from './support/runpod-schemas.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface V1Pod {
  id: string;
  name: string;
  desiredStatus: string;
  image: string;
  imageName: string;
  env: Record<string, string>;
  ports: string[];
  gpuCount: number;
  cpuFlavorId?: string;
  vcpuCount: number;
  memoryInGb: number;
  volumeInGb: number;
  containerDiskInGb: number;
  dockerStartCmd: string[];
  costPerHr: number;
  createdAt: string;
  lastStartedAt?: string;
  portMappings: Record<string, number> | null;
  publicIp: string | null;
  machine?: { dataCenterId: string };
  templateId?: string;
}
interface V2Pod {
  id: string;
  status: string;
  image: string;
  env: Record<string, string>;
}
interface NativePod {
  id: string;
  status: string;
  desiredStatus: string;
  image: string;
  portMappings: Record<string, number>;
}

const conforms = (schema: TSchema, value: unknown, what: string): void => assert.deepEqual(C.violations(schema, value), [], `${what} conforms to RunPod's schema`);

describe('RunPod REST v1', () => {
  let t: TestServer;
  let image: string;
  before(async () => {
    image = await ensureSleeperImage();
    t = await startTestServer();
  });
  after(async () => t?.close());

  const v1 = <T,>(method: string, path: string, body?: unknown, key?: string) => t.api<T>(method, `/runpod/v1${path}`, body, key);
  const v2 = <T,>(method: string, path: string, body?: unknown) => t.api<T>(method, `/runpod/v2${path}`, body);
  const ids = async (query: string) => (await v1<V1Pod[]>('GET', `/pods${query}`)).body.map((p) => p.id);

  it('creates, lists with filters, gets, updates, acts on and deletes a CPU pod; bare arrays and the pod back from every action', async () => {
    const created = await v1<V1Pod>('POST', '/pods', {
      name: 'v1-cpu',
      imageName: image,
      computeType: 'CPU',
      cpuFlavorIds: ['cpu3c'],
      vcpuCount: 2,
      containerDiskInGb: 20,
      volumeInGb: 10,
      ports: '8080/http,22/tcp',
      env: [{ key: 'GREETING', value: 'hi' }],
      cloudType: 'SECURE',
      minCudaVersion: '12.0',
      gpuTypePriority: 'availability',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    conforms(C.V1Pod, created.body, 'POST /pods');
    assert.equal(created.headers.get('berth-ignored-fields'), 'gpuTypePriority, minCudaVersion');
    const id = created.body.id;
    const pod = created.body;
    assert.equal(pod.image, image);
    assert.equal(pod.imageName, image, 'both spellings');
    assert.equal(pod.gpuCount, 0);
    assert.equal(pod.cpuFlavorId, 'cpu3c');
    assert.equal(pod.vcpuCount, 2);
    assert.equal(pod.memoryInGb, 4);
    assert.deepEqual(pod.ports, ['8080/http', '22/tcp']);
    assert.deepEqual(pod.env, { GREETING: 'hi' });
    assert.equal(pod.costPerHr, 0);
    assert.equal(pod.portMappings, null, 'empty until the container runs');
    assert.equal(new Date(pod.createdAt).toISOString(), pod.createdAt);

    await nativeStatus(t, id, 'RUNNING');
    const got = await v1<V1Pod>('GET', `/pods/${id}?includeMachine=true&includeSavingsPlans=true`);
    conforms(C.V1Pod, got.body, 'GET /pods/{id}');
    assert.equal(got.body.machine?.dataCenterId, 'local');
    assert.ok(got.body.portMappings?.['22'], 'portMappings: internal → public');
    assert.equal(got.body.publicIp, '127.0.0.1');
    assert.ok(got.body.lastStartedAt);

    const all = await v1<V1Pod[]>('GET', '/pods');
    assert.ok(Array.isArray(all.body), 'a bare array');
    conforms(C.V1Pods, all.body, 'GET /pods');
    assert.deepEqual(await ids('?computeType=CPU'), [id]);
    assert.deepEqual(await ids('?computeType=GPU'), []);
    assert.deepEqual(await ids('?cpuFlavorId=cpu5g&cpuFlavorId=cpu3c'), [id], 'repeated keys');
    assert.deepEqual(await ids('?cpuFlavorId=cpu5g,cpu3c'), [id], 'comma-joined');
    assert.deepEqual(await ids('?cpuFlavorId=cpu5m'), []);
    assert.deepEqual(await ids('?desiredStatus=RUNNING&dataCenterId=local&name=v1-cpu'), [id]);
    assert.deepEqual(await ids(`?imageName=${encodeURIComponent(image)}&id=${id}`), [id]);
    assert.deepEqual(await ids('?desiredStatus=EXITED'), []);
    assert.deepEqual(await ids('?endpointId=abc'), [], 'Berth has no Serverless workers');

    for (const action of ['stop', 'stop', 'start', 'start', 'restart', 'reset']) {
      const r = await v1<V1Pod>('POST', `/pods/${id}/${action}`);
      assert.equal(r.status, 200, `${action}: ${JSON.stringify(r.body)}`);
      conforms(C.V1Pod, r.body, action);
      assert.equal(r.body.id, id);
      assert.equal(r.body.desiredStatus, action === 'stop' ? 'EXITED' : 'RUNNING');
      await nativeStatus(t, id, action === 'stop' ? 'EXITED' : 'RUNNING');
    }

    const patched = await v1<V1Pod>('PATCH', `/pods/${id}`, { env: { GREETING: 'hello' }, dockerStartCmd: ['sh', '-c', 'exec sleep 3600'] });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    conforms(C.V1Pod, patched.body, 'PATCH');
    assert.deepEqual(patched.body.env, { GREETING: 'hello' }, 'PATCH env replaces the map, as runpodctl expects');
    const updated = await v1<V1Pod>('POST', `/pods/${id}/update`, { name: 'v1-renamed', containerDiskInGb: 30 });
    assert.equal(updated.status, 200);
    assert.equal(updated.body.name, 'v1-renamed');
    assert.equal(updated.body.containerDiskInGb, 30);
    assert.deepEqual(updated.body.dockerStartCmd, ['sh', '-c', 'exec sleep 3600']);
    const shrink = await v1<{ message: string }>('PATCH', `/pods/${id}`, { volumeInGb: 5 });
    assert.equal(shrink.status, 400);
    conforms(C.V1Error, shrink.body, '400');
    assert.match(shrink.body.message, /can only grow/);

    const del = await fetch(`${t.url}/runpod/v1/pods/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' } });
    assert.equal(del.status, 204);
    assert.equal((await v1<V1Pod>('GET', `/pods/${id}`)).body.desiredStatus, 'TERMINATED');
    assert.deepEqual(await ids(''), [], 'terminated pods leave the list');
    assert.deepEqual(await ids('?desiredStatus=TERMINATED'), [id]);
    await waitFor('containers removed', async () => ((await containersOf(id)).length === 0 ? true : undefined));
  });

  it('answers {"message"} errors: 400 for what Berth cannot honour, 401, 404, and no GPU to place on', async () => {
    const refusals: [unknown, RegExp][] = [
      [{ imageName: image, computeType: 'CPU', interruptible: true }, /interruptible/],
      [{ imageName: image, computeType: 'CPU', locked: true }, /lock/],
      [{ imageName: image, computeType: 'CPU', cpuFlavorIds: ['cpu9z'] }, /unknown CPU flavour/],
      [{ imageName: image, computeType: 'CPU', dataCenterIds: ['EU-RO-1'] }, /unknown data center EU-RO-1/],
      [{ imageName: image, computeType: 'CPU', containerDiskInGb: 'lots' }, /containerDiskInGb/],
    ];
    for (const [body, message] of refusals) {
      const r = await v1<{ message: string }>('POST', '/pods', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      conforms(C.V1Error, r.body, JSON.stringify(body));
      assert.match(r.body.message, message);
    }
    // The spec's default compute type is GPU; this machine has none to place it on.
    const gpu = await v1<{ message: string }>('POST', '/pods', { imageName: image });
    assert.equal(gpu.status, 409);
    assert.match(gpu.body.message, /no node can ever run this pod/);

    const unauthorized = await v1<{ message: string }>('GET', '/pods', undefined, 'berth_wrong');
    assert.equal(unauthorized.status, 401);
    conforms(C.V1Error, unauthorized.body, '401');
    assert.deepEqual(Object.keys(unauthorized.body), ['message']);
    assert.equal((await v1<{ message: string }>('GET', '/pods/nosuchpod00000')).body.message, 'pod nosuchpod00000 not found');
    assert.equal((await v1('GET', '/nothing-here')).status, 404);
    assert.deepEqual(Object.keys((await v1<object>('GET', '/endpoints')).body), ['message']);
  });

  it('network volumes, templates and container registry auth as v1 has them', async () => {
    const vol = await v1<{ id: string; size: number }>('POST', '/networkvolumes', { name: 'data', size: 10, dataCenterId: 'local' });
    assert.equal(vol.status, 200, JSON.stringify(vol.body));
    conforms(C.V1NetworkVolume, vol.body, 'POST /networkvolumes');
    conforms(C.V1NetworkVolumes, (await v1('GET', '/networkvolumes')).body, 'GET /networkvolumes');
    assert.equal((await v1<{ size: number }>('PATCH', `/networkvolumes/${vol.body.id}`, { size: 15 })).body.size, 15);
    assert.equal((await v1<{ name: string }>('POST', `/networkvolumes/${vol.body.id}/update`, { name: 'renamed' })).body.name, 'renamed');
    conforms(C.V1NetworkVolume, (await v1('GET', `/networkvolumes/${vol.body.id}`)).body, 'GET /networkvolumes/{id}');
    assert.equal((await v1('DELETE', `/networkvolumes/${vol.body.id}`)).status, 204);

    const tpl = await v1<{ id: string; dockerStartCmd: string[] }>('POST', '/templates', { name: 'tpl', imageName: image, dockerStartCmd: ['sleep', '3600'], env: { A: '1' }, ports: ['8080/http'], volumeInGb: 0, category: 'CPU' });
    assert.equal(tpl.status, 200, JSON.stringify(tpl.body));
    conforms(C.V1Template, tpl.body, 'POST /templates');
    conforms(C.V1Templates, (await v1('GET', '/templates?includePublicTemplates=true')).body, 'GET /templates');
    const tplUpdated = await v1<{ env: Record<string, string>; category: string }>('POST', `/templates/${tpl.body.id}/update`, { env: { A: '2' } });
    assert.deepEqual(tplUpdated.body.env, { A: '2' });
    assert.equal(tplUpdated.body.category, 'CPU');
    assert.equal((await v1('POST', '/templates', { name: 'pub', imageName: image, isPublic: true })).status, 400);

    const fromTpl = await v1<V1Pod>('POST', '/pods', { name: 'from-tpl', templateId: tpl.body.id, computeType: 'CPU', env: { B: '1' } });
    assert.equal(fromTpl.status, 201, JSON.stringify(fromTpl.body));
    assert.deepEqual(fromTpl.body.env, { A: '2', B: '1' });
    assert.deepEqual(fromTpl.body.dockerStartCmd, ['sleep', '3600']);
    assert.equal(fromTpl.body.templateId, tpl.body.id);
    assert.deepEqual(await ids(`?templateId=${tpl.body.id}`), [fromTpl.body.id]);
    assert.equal((await v1('DELETE', `/pods/${fromTpl.body.id}`)).status, 204);
    assert.equal((await v1('DELETE', `/templates/${tpl.body.id}`)).status, 204);

    const auth = await v1<{ id: string; name: string }>('POST', '/containerregistryauth', { name: 'ghcr', username: 'me', password: 'secret' });
    assert.equal(auth.status, 200);
    assert.deepEqual(Object.keys(auth.body).sort(), ['id', 'name']);
    conforms(C.V1ContainerRegistryAuths, (await v1('GET', '/containerregistryauth')).body, 'GET /containerregistryauth');
    conforms(C.V1ContainerRegistryAuth, (await v1('GET', `/containerregistryauth/${auth.body.id}`)).body, 'GET /containerregistryauth/{id}');
    assert.equal((await v1('DELETE', `/containerregistryauth/${auth.body.id}`)).status, 204);
  });

  it('one set of pods: the native API, v1 and v2 see the same ids, statuses and storage', async () => {
    const native = await t.api<NativePod>('POST', '/api/v1/pods', { name: 'native', image, volumeGb: 0, ports: ['22/tcp'] });
    assert.equal(native.status, 201);
    const fromV1 = await v1<V1Pod>('POST', '/pods', { name: 'via-v1', imageName: image, computeType: 'CPU', vcpuCount: 1, volumeInGb: 10 });
    assert.equal(fromV1.status, 201, JSON.stringify(fromV1.body));
    const [a, b] = [native.body.id, fromV1.body.id];
    await nativeStatus(t, a, 'RUNNING');
    await nativeStatus(t, b, 'RUNNING');

    const v2Ids = (await v2<{ pods: V2Pod[] }>('GET', '/pods')).body.pods.map((p) => p.id).sort();
    assert.deepEqual(v2Ids, [a, b].sort());
    assert.deepEqual((await ids('')).sort(), [a, b].sort());
    for (const id of [a, b]) {
      const n = (await t.api<NativePod>('GET', `/api/v1/pods/${id}`)).body;
      const one = (await v1<V1Pod>('GET', `/pods/${id}`)).body;
      const two = (await v2<V2Pod>('GET', `/pods/${id}`)).body;
      conforms(C.V1Pod, one, `native pod ${id} through v1`);
      assert.equal(two.status, n.status);
      assert.equal(one.desiredStatus, n.desiredStatus);
      assert.equal(one.image, n.image);
      assert.equal(two.image, n.image);
      assert.deepEqual(one.portMappings, n.portMappings);
    }
    // A native pod without a CPU reservation still reads as RunPod's shapes (the node's CPUs).
    const nativeInV2 = (await v2<{ cpu: { id: string; vcpuCount: number } }>('GET', `/pods/${a}`)).body;
    assert.equal(nativeInV2.cpu.id, 'cpu3c');
    assert.ok(nativeInV2.cpu.vcpuCount >= 1);

    // Stop through v1, see it in v2 and natively; start through v2, see it in v1; the volume disk survives.
    assert.equal((await t.api<{ exitCode: number }>('POST', `/api/v1/pods/${b}/exec`, { command: ['sh', '-c', 'echo kept > /workspace/f'] })).body.exitCode, 0);
    await v1('POST', `/pods/${b}/stop`);
    await nativeStatus(t, b, 'EXITED');
    assert.equal((await v2<V2Pod>('GET', `/pods/${b}`)).body.status, 'EXITED');
    assert.equal((await v2('POST', `/pods/${b}/action`, { action: 'start' })).status, 200);
    await nativeStatus(t, b, 'RUNNING');
    assert.equal((await v1<V1Pod>('GET', `/pods/${b}`)).body.desiredStatus, 'RUNNING');
    assert.equal((await t.api<{ stdout: string }>('POST', `/api/v1/pods/${b}/exec`, { command: ['cat', '/workspace/f'] })).body.stdout.trim(), 'kept');

    // Terminate one through each RunPod API.
    assert.equal((await v2('DELETE', `/pods/${a}`)).status, 204);
    assert.equal((await v1('DELETE', `/pods/${b}`)).status, 204);
    for (const id of [a, b]) {
      await nativeStatus(t, id, 'TERMINATED');
      assert.equal((await t.api<NativePod>('GET', `/api/v1/pods/${id}`)).body.status, 'TERMINATED');
      assert.equal((await v1<V1Pod>('GET', `/pods/${id}`)).body.desiredStatus, 'TERMINATED');
      assert.equal((await v2<V2Pod>('GET', `/pods/${id}`)).body.status, 'TERMINATED');
    }
  });
});

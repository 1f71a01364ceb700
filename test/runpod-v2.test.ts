/**
 * RunPod REST v2 at /runpod/v2 on a real server and Docker daemon, every answer checked against
 * RunPod's published schemas (test/support/runpod-schemas.ts). The node declares simulated GPUs so
 * GPU pods and the GPU catalog run on a machine without any.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { containersOf, nativeStatus } from './support/runpod-fixtures.js';
import * as C from './support/runpod-schemas.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface Pod {
  id: string;
  name: string;
  status: string;
  actions: string[];
  env: Record<string, string>;
  args: string;
  ports: string[];
  mounts: { persistent?: { size: number; path: string }; network?: { volumeId: string; path: string }[] };
  gpu?: { id: string; count: number };
  cpu?: { id: string; vcpuCount: number; memory: number };
  ssh: { proxy: { host: string; port: number; username: string; command: string } | null; direct: { host: string; port: number; username: string } | null };
  runtime: { ports: { private: number; public: number | null; type: string; ip: string | null }[] } | null;
  template: string | null;
  startedAt: string | null;
}
interface Problem {
  title: string;
  status: number;
  detail: string;
  errors?: string[];
  actions?: string[];
  code: string;
}

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com';
const RTX = 'NVIDIA GeForce RTX 4090';

const conforms = (schema: TSchema, value: unknown, what: string): void => assert.deepEqual(C.violations(schema, value), [], `${what} conforms to RunPod's schema`);

/** Server-sent events until `ms` pass: each event's id and parsed data. */
async function readEvents(url: string, key: string, ms: number, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}`, ...headers }, signal: AbortSignal.timeout(ms) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  let text = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
  } catch {
    // The timeout ends the stream.
  }
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => ({ id: /^id: (.*)$/m.exec(block)?.[1] ?? '', data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as { ts: string; source: string; line: string } }));
}

describe('RunPod REST v2', () => {
  let t: TestServer;
  before(async () => {
    await ensureTestImage();
    const inventory = join(tmpdir(), `berth-runpod-v2-gpus-${process.pid}.json`);
    await writeFile(
      inventory,
      JSON.stringify({
        gpus: [
          { uuid: 'GPU-rp-1', name: RTX, memoryMb: 24564 },
          { uuid: 'GPU-rp-2', name: RTX, memoryMb: 24564 },
          { uuid: 'GPU-rp-3', name: 'NVIDIA A100-SXM4-80GB', memoryMb: 81920 },
        ],
      }),
    );
    t = await startTestServer({ gpuInventory: inventory });
  });
  after(async () => t?.close());

  const v2 = <T,>(method: string, path: string, body?: unknown, key?: string) => t.api<T>(method, `/runpod/v2${path}`, body, key);
  const running = (id: string) => waitFor(`${id} RUNNING`, async () => ((await v2<Pod>('GET', `/pods/${id}`)).body.status === 'RUNNING' ? (await v2<Pod>('GET', `/pods/${id}`)).body : undefined));

  it('creates a GPU pod as RunPod documents: SSH keys and a Jupyter password injected, ssh.proxy and ssh.direct, runtime ports, unknown fields named', async () => {
    const keys = await v2<{ keys: string[] }>('PUT', '/account/ssh-keys', { keys: [KEY] });
    assert.equal(keys.status, 200);
    conforms(C.V2SshKeys, keys.body, 'PUT /account/ssh-keys');
    assert.deepEqual((await v2<{ keys: string[] }>('GET', '/account/ssh-keys')).body.keys, [KEY]);

    const created = await v2<Pod>('POST', '/pods', {
      name: 'gpu-pod',
      image: TEST_IMAGE,
      args: "sh -c 'echo line1; echo line2; echo line3; exec sleep 3600'",
      gpu: { id: RTX, count: 1 },
      ports: ['8888/http', '22/tcp'],
      env: { MODEL: 'tiny' },
      mounts: { persistent: { size: 10, path: '/workspace' } },
      startSsh: true,
      startJupyter: true,
      cloud: 'COMMUNITY',
      someFutureField: 1,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    conforms(C.V2Pod, created.body, 'POST /pods');
    assert.equal(created.headers.get('berth-ignored-fields'), 'someFutureField, cloud');
    const id = created.body.id;
    assert.equal(created.body.args, "sh -c 'echo line1; echo line2; echo line3; exec sleep 3600'");
    assert.deepEqual(created.body.gpu, { id: RTX, count: 1 });
    assert.deepEqual(created.body.mounts, { persistent: { size: 10, path: '/workspace' } });
    assert.equal(created.body.env.MODEL, 'tiny');
    assert.match(created.body.env.JUPYTER_PASSWORD ?? '', /^[\w-]{16}$/, 'startJupyter generates JUPYTER_PASSWORD');
    assert.equal(created.body.ports.includes('8888/http'), true);

    const pod = await running(id);
    conforms(C.V2Pod, pod, 'GET /pods/{id}');
    assert.deepEqual(pod.actions, ['stop', 'restart', 'terminate']);
    // Berth's SSH gateway: user = pod id; host and port are the server's (2222 and the API's host unless configured).
    const proxy = pod.ssh.proxy!;
    assert.equal(proxy.username, id);
    assert.equal(proxy.command, `ssh ${proxy.port === 22 ? '' : `-p ${proxy.port} `}${id}@${proxy.host}`);
    const p22 = pod.runtime!.ports.find((p) => p.private === 22)!;
    assert.equal(p22.type, 'tcp');
    assert.ok(p22.public);
    assert.deepEqual(pod.ssh.direct, { host: '127.0.0.1', port: p22.public, username: 'root', command: `ssh root@127.0.0.1 -p ${p22.public}` });

    const env = (await t.api<{ stdout: string }>('POST', `/api/v1/pods/${id}/exec`, { command: ['env'] })).body.stdout;
    assert.ok(env.includes(`PUBLIC_KEY=${KEY}`), 'startSsh puts the account keys in PUBLIC_KEY');
    assert.ok(env.includes(`JUPYTER_PASSWORD=${pod.env.JUPYTER_PASSWORD}`));
    assert.match(env, /^NVIDIA_VISIBLE_DEVICES=GPU-rp-[12]$/m);

    const list = await v2<{ pods: Pod[] }>('GET', '/pods');
    conforms(C.V2ListPods, list.body, 'GET /pods');
    assert.deepEqual(
      list.body.pods.map((p) => p.id),
      [id],
    );

    // Logs: backfill, source filter, and a resume after the first line with Last-Event-ID.
    const url = `${t.url}/runpod/v2/pods/${id}/logs`;
    const events = await readEvents(`${url}?source=container`, t.key, 1000);
    assert.deepEqual(
      events.map((e) => e.data.line),
      ['line1', 'line2', 'line3'],
    );
    assert.ok(events.every((e) => e.data.source === 'container' && e.id.startsWith(`${e.data.ts}/`)));
    const resumed = await readEvents(`${url}?source=container`, t.key, 1000, { 'last-event-id': events[0]!.id });
    assert.deepEqual(
      resumed.map((e) => e.data.line),
      ['line2', 'line3'],
    );
    const system = await readEvents(`${url}?source=system&tail=0`, t.key, 500);
    assert.ok(system.some((e) => e.data.line === `pod ${id} created`));
    assert.ok(system.every((e) => e.data.source === 'system'));
    assert.deepEqual(
      (await readEvents(`${url}?tail=1&source=container`, t.key, 800)).map((e) => e.data.line),
      ['line3'],
    );

    // Actions: 409 with the allowed ones, then stop, start, restart.
    const refused = await v2<Problem>('POST', `/pods/${id}/action`, { action: 'start' });
    assert.equal(refused.status, 409);
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    conforms(C.V2Error, refused.body, '409');
    assert.deepEqual(refused.body.actions, ['stop', 'restart', 'terminate']);

    const stopped = await v2<Pod>('POST', `/pods/${id}/action`, { action: 'stop' });
    assert.equal(stopped.status, 200);
    conforms(C.V2Pod, stopped.body, 'stop');
    await nativeStatus(t, id, 'EXITED');
    const exited = (await v2<Pod>('GET', `/pods/${id}`)).body;
    assert.deepEqual(exited.actions, ['start', 'terminate']);
    assert.equal(exited.runtime, null);
    assert.equal(exited.ssh.direct, null);

    const renamed = await v2<Pod>('PATCH', `/pods/${id}`, { name: 'renamed' });
    assert.equal(renamed.status, 200);
    conforms(C.V2Pod, renamed.body, 'PATCH');
    assert.equal(renamed.body.name, 'renamed');
    const wrongMount = await v2<Problem>('PATCH', `/pods/${id}`, { mounts: { network: [{ volumeId: 'nope', path: '/data' }] } });
    assert.equal(wrongMount.status, 400);
    assert.match(wrongMount.body.detail, /fixed at create/);
    assert.equal((await v2<Problem>('PATCH', `/pods/${id}`, { locked: true })).status, 400);

    assert.equal((await v2<Pod>('POST', `/pods/${id}/action`, { action: 'start' })).status, 200);
    await running(id);
    const restarted = await v2<Pod>('POST', `/pods/${id}/action`, { action: 'restart' });
    assert.equal(restarted.status, 200);

    // Terminate: 204, the pod shows TERMINATED, a second DELETE is still 204.
    const del = await fetch(`${t.url}/runpod/v2/pods/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' } });
    assert.equal(del.status, 204, 'DELETE with a JSON content type and no body');
    await nativeStatus(t, id, 'TERMINATED');
    assert.equal((await v2<Pod>('GET', `/pods/${id}`)).body.status, 'TERMINATED');
    assert.equal((await v2('DELETE', `/pods/${id}`)).status, 204);
    await waitFor('containers removed', async () => ((await containersOf(id)).length === 0 ? true : undefined));
    assert.deepEqual((await v2<{ pods: Pod[] }>('GET', '/pods')).body.pods, []);
  });

  it('answers problem+json: 422 with each violation, 400 for rules Berth cannot honour, 401 and 404', async () => {
    const bad = await v2<Problem>('POST', '/pods', { name: 'x', image: TEST_IMAGE, gpu: { id: RTX, count: 0 }, disk: 0 });
    assert.equal(bad.status, 422);
    conforms(C.V2Error, bad.body, '422');
    assert.deepEqual(bad.body.errors?.sort(), ['/disk: must be >= 1', '/gpu/count: must be >= 1']);

    const cases: [unknown, RegExp][] = [
      [{ name: 'x', image: TEST_IMAGE }, /set gpu .* or cpu/],
      [{ name: 'x', image: TEST_IMAGE, cpu: { id: 'cpu3c', vcpuCount: 3 } }, /power of two/],
      [{ name: 'x', image: TEST_IMAGE, cpu: { id: 'cpu9x', vcpuCount: 2 } }, /unknown CPU flavour cpu9x/],
      [{ name: 'x', image: TEST_IMAGE, gpu: { id: RTX }, dataCenterIds: ['US-TX-3'] }, /unknown data center US-TX-3; .* local/],
      [{ name: 'x', image: TEST_IMAGE, gpu: { id: RTX }, globalNetworking: true }, /no global networking/],
      [{ name: 'x', image: TEST_IMAGE, gpu: { id: 'NVIDIA H100 80GB HBM3' } }, /no node can ever run this pod/],
      [{ name: 'x', gpu: { id: RTX } }, /image.*required unless templateId/],
    ];
    for (const [body, detail] of cases) {
      const r = await v2<Problem>('POST', '/pods', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      conforms(C.V2Error, r.body, JSON.stringify(body));
      assert.match(r.body.detail, detail);
    }

    // An unknown action: one violation naming the actions, not one per action the schema allows.
    const reboot = await v2<Problem>('POST', '/pods/nosuchpod00000/action', { action: 'reboot' });
    assert.equal(reboot.status, 422);
    conforms(C.V2Error, reboot.body, '422 unknown action');
    assert.deepEqual(reboot.body.errors, ['/action: must be one of start, stop, restart, terminate']);
    assert.equal(reboot.body.detail, '/action: must be one of start, stop, restart, terminate');
    const numeric = await v2<Problem>('POST', '/pods/nosuchpod00000/action', { action: 5 });
    assert.deepEqual(numeric.body.errors, ['/action: must be one of start, stop, restart, terminate'], 'a wrong type is the same mistake, said once');

    const noKey = await v2<Problem>('GET', '/pods', undefined, 'berth_not-a-key');
    assert.equal(noKey.status, 401);
    conforms(C.V2Error, noKey.body, '401');
    const missing = await v2<Problem>('GET', '/pods/nosuchpod00000');
    assert.equal(missing.status, 404);
    conforms(C.V2Error, missing.body, '404');
    const serverless = await v2<Problem>('GET', '/serverless');
    assert.equal(serverless.status, 404);
    assert.match(serverless.body.detail, /does not serve RunPod's Serverless/);
  });

  it('serves the catalog from the nodes: GPU types and their stock, CPU flavours, the data center; both array encodings', async () => {
    const gpus = await v2<{ gpus: { id: string; maxCount: { secure: number }; availability?: string; dataCenters?: { id: string }[] }[] }>('GET', '/catalog/gpus');
    conforms(C.V2ListGpuTypes, gpus.body, 'GET /catalog/gpus');
    assert.deepEqual(gpus.body.gpus.map((g) => g.id).sort(), ['NVIDIA A100-SXM4-80GB', RTX]);
    assert.equal(gpus.body.gpus.find((g) => g.id === RTX)?.maxCount.secure, 2);
    assert.equal(gpus.body.gpus[0]!.availability, undefined, 'availability only when asked for');

    const withStock = await v2<{ gpus: { id: string; availability: string; dataCenters: { id: string }[] }[] }>('GET', '/catalog/gpus?include=AVAILABILITY&product=POD&count=2');
    conforms(C.V2ListGpuTypes, withStock.body, 'GET /catalog/gpus?include=AVAILABILITY');
    const rtx = withStock.body.gpus.find((g) => g.id === RTX)!;
    assert.equal(rtx.availability, 'LOW');
    assert.deepEqual(rtx.dataCenters.map((d) => d.id), ['local']);
    assert.equal(withStock.body.gpus.find((g) => g.id !== RTX)!.availability, 'NONE', 'one A100 cannot serve a count of 2');
    assert.equal((await v2<Problem>('GET', '/catalog/gpus?include=AVAILABILITY')).status, 400, 'include=AVAILABILITY needs product');

    const one = await v2('GET', `/catalog/gpus/${encodeURIComponent(RTX)}`);
    assert.equal(one.status, 200);
    conforms(C.V2GpuType, one.body, 'GET /catalog/gpus/{id}');
    assert.equal((await v2('GET', '/catalog/gpus/nope')).status, 404);

    const cpus = await v2<{ cpus: { id: string }[] }>('GET', '/catalog/cpus?include=AVAILABILITY&product=POD');
    conforms(C.V2ListCpuTypes, cpus.body, 'GET /catalog/cpus');
    assert.ok(cpus.body.cpus.some((c) => c.id === 'cpu3c'));
    conforms(C.V2CpuType, (await v2('GET', '/catalog/cpus/cpu5g')).body, 'GET /catalog/cpus/{id}');

    const joined = await v2<{ dataCenters: { id: string; gpuAvailability?: unknown[]; cpuAvailability?: unknown[] }[] }>('GET', '/catalog/datacenters?include=GPU_AVAILABILITY,CPU_AVAILABILITY');
    const repeated = await v2('GET', '/catalog/datacenters?include=GPU_AVAILABILITY&include=CPU_AVAILABILITY');
    conforms(C.V2ListDataCenters, joined.body, 'GET /catalog/datacenters');
    assert.deepEqual(repeated.body, joined.body, 'comma-joined and repeated keys mean the same');
    assert.deepEqual(joined.body.dataCenters.map((d) => d.id), ['local']);
    assert.ok(joined.body.dataCenters[0]!.gpuAvailability?.length);
    conforms(C.V2DataCenter, (await v2('GET', '/catalog/datacenters/local')).body, 'GET /catalog/datacenters/{id}');
    assert.deepEqual((await v2('GET', '/catalog/templates')).body, { templates: [] });
  });

  it('templates, network volumes and registries: wrapped lists, create 201, delete 204, pods from a template', async () => {
    const tpl = await v2<{ id: string; startJupyter: boolean; startSsh: boolean }>('POST', '/templates', {
      name: 'sleeper',
      image: TEST_IMAGE,
      args: 'sleep 3600',
      ports: ['8888/http'],
      env: { FROM_TEMPLATE: 'yes', SHARED: 'template' },
      startJupyter: false,
      category: 'NVIDIA',
    });
    assert.equal(tpl.status, 201, JSON.stringify(tpl.body));
    conforms(C.V2Template, tpl.body, 'POST /templates');
    assert.equal(tpl.body.startSsh, true, "RunPod's template default");
    conforms(C.V2ListTemplates, (await v2('GET', '/templates')).body, 'GET /templates');
    const patched = await v2<{ name: string }>('PATCH', `/templates/${tpl.body.id}`, { name: 'sleeper-2' });
    assert.equal(patched.body.name, 'sleeper-2');
    conforms(C.V2Template, patched.body, 'PATCH /templates/{id}');

    const fromTpl = await v2<Pod>('POST', '/pods', { name: 'from-template', templateId: tpl.body.id, gpu: { id: RTX }, env: { SHARED: 'body' } });
    assert.equal(fromTpl.status, 201, JSON.stringify(fromTpl.body));
    assert.equal(fromTpl.body.args, 'sleep 3600');
    assert.deepEqual(fromTpl.body.env, { FROM_TEMPLATE: 'yes', SHARED: 'body' }, 'env merged per key, the body wins');
    assert.deepEqual(fromTpl.body.mounts, {}, 'no mount from a template without one');
    assert.equal(fromTpl.body.template, tpl.body.id);
    assert.equal((await v2('DELETE', `/pods/${fromTpl.body.id}`)).status, 204);
    assert.equal((await v2('POST', '/pods', { name: 'x', templateId: 'nosuchtemplate', gpu: { id: RTX } })).status, 404);

    const vol = await v2<{ id: string; size: number }>('POST', '/network-volumes', { name: 'data', size: 10, dataCenter: 'local' });
    assert.equal(vol.status, 201, JSON.stringify(vol.body));
    conforms(C.V2NetworkVolume, vol.body, 'POST /network-volumes');
    conforms(C.V2ListNetworkVolumes, (await v2('GET', '/network-volumes')).body, 'GET /network-volumes');
    assert.equal((await v2<{ size: number }>('PATCH', `/network-volumes/${vol.body.id}`, { size: 20 })).body.size, 20);
    assert.equal((await v2('PATCH', `/network-volumes/${vol.body.id}`, { size: 10 })).status, 400, 'volumes only grow');
    assert.equal((await v2('POST', '/network-volumes', { name: 'fast', size: 10, dataCenter: 'local', type: 'HIGH_PERFORMANCE' })).status, 400);

    const withVol = await v2<Pod>('POST', '/pods', { name: 'nv', image: TEST_IMAGE, args: 'sleep 3600', cpu: { id: 'cpu3c', vcpuCount: 2 }, mounts: { network: [{ volumeId: vol.body.id, path: '/data' }] } });
    assert.equal(withVol.status, 201, JSON.stringify(withVol.body));
    assert.deepEqual(withVol.body.mounts, { network: [{ volumeId: vol.body.id, path: '/data' }] });
    assert.deepEqual(withVol.body.cpu, { id: 'cpu3c', vcpuCount: 2, memory: 4 });
    assert.equal((await v2('DELETE', `/network-volumes/${vol.body.id}`)).status, 409, 'attached to a pod');
    assert.equal((await v2('POST', `/pods/${withVol.body.id}/action`, { action: 'terminate' })).status, 204);
    await waitFor('volume free', async () => ((await v2('DELETE', `/network-volumes/${vol.body.id}`)).status === 204 ? true : undefined));

    const reg = await v2<{ id: string }>('POST', '/registries', { name: 'private', username: 'me', password: 'secret' });
    assert.equal(reg.status, 201);
    conforms(C.V2Registry, reg.body, 'POST /registries');
    const regs = await v2('GET', '/registries');
    conforms(C.V2ListRegistries, regs.body, 'GET /registries');
    assert.doesNotMatch(JSON.stringify(regs.body), /secret/);
    assert.equal((await v2('DELETE', `/registries/${reg.body.id}`)).status, 204);
    assert.equal((await v2('DELETE', `/templates/${tpl.body.id}`)).status, 204);
    assert.deepEqual((await v2('PUT', '/account/ssh-keys', { keys: [] })).body, { keys: [] });
  });
});

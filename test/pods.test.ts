import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface PodView {
  id: string;
  status: string;
  desiredStatus: string;
  statusMessage: string | null;
  allowedActions: string[];
  portMappings: Record<string, number>;
  exitCode: number | null;
  lastLogLines: string[];
  restartCount: number;
  specVersion: number;
  spec: { env?: Record<string, string>; containers: { env: Record<string, string>; image: string }[] };
  instances: { id: string; containers: { containerId: string | null }[] }[];
}
interface Problem {
  code: string;
  detail: string;
  problems?: { path: string; message: string }[];
  allowedActions?: string[];
}

const docker = new Docker();
const WEB = ['sh', '-c', 'mkdir -p /www && echo hello-berth > /www/index.html && exec httpd -f -p 8080 -h /www'];

describe('pods on a real Docker daemon', () => {
  let t: TestServer;
  before(async () => {
    await ensureTestImage();
    t = await startTestServer();
  });
  after(async () => t?.close());

  const podStatus = (id: string, status: string) =>
    waitFor(`pod ${id} ${status}`, async () => {
      const r = await t.api<PodView>('GET', `/api/v1/pods/${id}`);
      return r.body.status === status ? r.body : undefined;
    });
  const exec = async (id: string, script: string) =>
    (await t.api<{ exitCode: number; stdout: string; stderr: string }>('POST', `/api/v1/pods/${id}/exec`, { command: ['sh', '-c', script] })).body;

  it('runs a pod: HTTP on the published port, env inside, storage tiers across stop/start, cleanup on terminate', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', { name: 'web', image: TEST_IMAGE, command: WEB, ports: ['8080/http', '22/tcp'], env: { GREETING: 'hi' } });
    assert.equal(created.status, 201);
    assert.match(created.body.id, /^[0-9a-z]{14}$/);
    const id = created.body.id;
    let pod = await podStatus(id, 'RUNNING');

    const hostPort = pod.portMappings['8080'];
    assert.ok(hostPort, 'port 8080 is mapped');
    const page = await waitFor('http answer', async () => {
      const res = await fetch(`http://127.0.0.1:${hostPort}/index.html`).catch(() => undefined);
      return res?.ok ? res.text() : undefined;
    });
    assert.equal(page.trim(), 'hello-berth');

    const env = await exec(id, 'env');
    assert.equal(env.exitCode, 0);
    for (const line of [`BERTH_POD_ID=${id}`, `RUNPOD_POD_ID=${id}`, 'GREETING=hi', 'BERTH_GPU_COUNT=0', `BERTH_TCP_PORT_22=${pod.portMappings['22']}`, 'BERTH_PUBLIC_IP=', 'BERTH_CPU_COUNT=', 'BERTH_MEM_GB=', 'RUNPOD_VOLUME_ID=']) {
      assert.ok(env.stdout.includes(line), `env has ${line}`);
    }

    assert.equal((await exec(id, 'echo disk > /root-file && echo vol > /workspace/kept')).exitCode, 0);
    const stopped = await t.api<PodView>('POST', `/api/v1/pods/${id}/stop`);
    assert.equal(stopped.status, 200);
    assert.equal(stopped.body.desiredStatus, 'EXITED');
    await podStatus(id, 'EXITED');
    assert.equal((await docker.listContainers({ all: true, filters: { label: [`berth.pod=${id}`] } })).length, 0, 'stop removes the container');

    assert.equal((await t.api('POST', `/api/v1/pods/${id}/start`)).status, 200);
    pod = await podStatus(id, 'RUNNING');
    const after = await exec(id, 'cat /workspace/kept; test -e /root-file && echo still-there || echo gone');
    assert.equal(after.stdout.trim(), 'vol\ngone', 'the volume disk survives a stop, the container disk does not');

    const volume = `berth-vol-${id}-0`;
    assert.ok((await docker.listVolumes({ filters: { name: [volume] } })).Volumes?.some((v) => v.Name === volume));
    // TERMINATED once the node has removed the containers, not before (issue 15).
    assert.equal((await t.api<PodView & { desiredStatus: string }>('DELETE', `/api/v1/pods/${id}`)).body.desiredStatus, 'TERMINATED');
    await waitFor('container and volume disk removed', async () => {
      const cs = await docker.listContainers({ all: true, filters: { label: [`berth.pod=${id}`] } });
      const vs = (await docker.listVolumes({ filters: { name: [volume] } })).Volumes ?? [];
      return cs.length === 0 && !vs.some((v) => v.Name === volume) ? true : undefined;
    });
    await podStatus(id, 'TERMINATED');
    const versions = await t.api<{ versions: unknown[] }>('GET', `/api/v1/pods/${id}/versions`);
    assert.equal(versions.body.versions.length, 1, 'versions are kept after terminate');
  });

  it('keeps a network volume across terminate and mounts it in a second pod', async () => {
    const nv = await t.api<{ id: string }>('POST', '/api/v1/network-volumes', { name: 'shared', sizeGb: 5 });
    assert.equal(nv.status, 201);
    const first = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], networkVolumeId: nv.body.id });
    await podStatus(first.body.id, 'RUNNING');
    const env = await exec(first.body.id, 'echo persisted > /workspace/data && echo $BERTH_VOLUME_ID');
    assert.equal(env.stdout.trim(), nv.body.id);
    await t.api('POST', `/api/v1/pods/${first.body.id}/terminate`);
    await waitFor('first pod cleaned up', async () => ((await docker.listContainers({ all: true, filters: { label: [`berth.pod=${first.body.id}`] } })).length === 0 ? true : undefined));

    const second = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], networkVolumeId: nv.body.id, volumeMountPath: '/data' });
    await podStatus(second.body.id, 'RUNNING');
    assert.equal((await exec(second.body.id, 'cat /data/data')).stdout.trim(), 'persisted');
    const busy = await t.api<Problem>('DELETE', `/api/v1/network-volumes/${nv.body.id}`);
    assert.equal(busy.status, 409, 'a volume in use cannot be deleted');
    await t.api('POST', `/api/v1/pods/${second.body.id}/terminate`);
    await waitFor('second pod cleaned up', async () => ((await docker.listContainers({ all: true, filters: { label: [`berth.pod=${second.body.id}`] } })).length === 0 ? true : undefined));
    assert.equal((await t.api('DELETE', `/api/v1/network-volumes/${nv.body.id}`)).status, 204);
    await waitFor('network volume data removed', async () => {
      const vs = (await docker.listVolumes({ filters: { name: [`berth-nv-${nv.body.id}`] } })).Volumes ?? [];
      return vs.length === 0 ? true : undefined;
    });
  });

  it('reports an exit with its code and last lines, and restarts per the restart policy', async () => {
    // Fails the first time only: the marker on the volume disk survives into the second run.
    const never = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sh', '-c', 'test -e /workspace/ran && exec sleep 3600; touch /workspace/ran; echo going-down; exit 7'], restartPolicy: 'never' });
    const failed = await podStatus(never.body.id, 'ERROR');
    assert.equal(failed.exitCode, 7);
    assert.ok(failed.lastLogLines.includes('going-down'), 'last log lines are kept');
    assert.match(failed.statusMessage ?? '', /exited with code 7/);
    assert.deepEqual(failed.allowedActions, ['start', 'stop', 'restart', 'reset', 'terminate']);
    assert.equal((await t.api('POST', `/api/v1/pods/${never.body.id}/start`)).status, 200);
    await podStatus(never.body.id, 'RUNNING');

    const always = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sh', '-c', 'sleep 0.3; exit 1'], restartPolicy: 'always', volumeGb: 0 });
    await waitFor('restarted', async () => {
      const p = (await t.api<PodView>('GET', `/api/v1/pods/${always.body.id}`)).body;
      return p.restartCount >= 1 ? p : undefined;
    });

    const ok = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['true'], restartPolicy: 'on-failure', volumeGb: 0 });
    const exited = await podStatus(ok.body.id, 'EXITED');
    assert.equal(exited.exitCode, 0);
  });

  it('restart keeps the container disk; reset wipes it', async () => {
    const p = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
    const id = p.body.id;
    await podStatus(id, 'RUNNING');
    await exec(id, 'echo x > /marker');
    const pid1 = (await exec(id, 'cat /proc/1/stat')).stdout.split(' ')[21];
    assert.equal((await t.api('POST', `/api/v1/pods/${id}/restart`)).status, 200);
    await waitFor('restart carried out', async () => ((await t.api<PodView & { instances: { observedRestartGeneration: number }[] }>('GET', `/api/v1/pods/${id}`)).body.instances[0]!.observedRestartGeneration === 1 ? true : undefined));
    await waitFor('marker after restart', async () => ((await exec(id, 'cat /marker').catch(() => undefined))?.stdout.trim() === 'x' ? true : undefined));
    assert.notEqual((await exec(id, 'cat /proc/1/stat')).stdout.split(' ')[21], pid1, 'the process started again');
    assert.equal((await t.api('POST', `/api/v1/pods/${id}/reset`)).status, 200);
    await waitFor('marker gone after reset', async () => {
      const r = await exec(id, 'test -e /marker && echo yes || echo no').catch(() => undefined);
      return r?.stdout.trim() === 'no' ? true : undefined;
    });
  });

  it('answers bad input with every problem, unknown ids with 404, and wrong-status actions with 409', async () => {
    const bad = await t.api<Problem>('POST', '/api/v1/pods', { image: '', ports: ['80/udp', '8080/http'], gpuCount: -2, volumeMountPath: 'relative', surprise: true });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'BERTH_ERR_VALIDATION');
    const paths = bad.body.problems!.map((p) => p.path).sort();
    assert.deepEqual(paths, ['/', '/gpuCount', '/image', '/ports(0)', '/volumeMountPath'].sort());
    assert.equal(bad.headers.get('content-type'), 'application/problem+json; charset=utf-8');

    const before = (await t.api<{ pods: unknown[] }>('GET', '/api/v1/pods?includeTerminated=true')).body.pods.length;
    const noVolume = await t.api<Problem>('POST', '/api/v1/pods', { image: TEST_IMAGE, networkVolumeId: 'nope', registryAuthId: 'nope' });
    assert.equal(noVolume.status, 400);
    assert.deepEqual(noVolume.body.problems!.map((p) => p.path).sort(), ['/networkVolumeId', '/registryAuthId']);
    assert.equal((await t.api<{ pods: unknown[] }>('GET', '/api/v1/pods?includeTerminated=true')).body.pods.length, before, 'a failed create leaves nothing behind');

    const missing = await t.api<Problem>('GET', '/api/v1/pods/zzzzzzzzzzzzzz');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'BERTH_ERR_POD_NOT_FOUND');
    assert.equal((await t.api<Problem>('POST', '/api/v1/pods/zzzzzzzzzzzzzz/stop')).status, 404);

    const p = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
    await podStatus(p.body.id, 'RUNNING');
    await t.api('POST', `/api/v1/pods/${p.body.id}/stop`);
    await podStatus(p.body.id, 'EXITED');
    const again = await t.api<Problem>('POST', `/api/v1/pods/${p.body.id}/stop`);
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 'BERTH_ERR_ACTION_NOT_ALLOWED');
    assert.deepEqual(again.body.allowedActions, ['start', 'reset', 'terminate']);

    const noKey = await fetch(`${t.url}/api/v1/pods`);
    assert.equal(noKey.status, 401);
    const health = await fetch(`${t.url}/healthz`);
    assert.equal(health.status, 200);
  });

  it('keeps a multi-container pod\'s shared network across a restart', async () => {
    const p = await t.api<PodView>('POST', '/api/v1/pods', {
      volumeGb: 0,
      containers: [
        { name: 'holder', image: TEST_IMAGE, command: ['sleep', '3600'], ports: ['8080/http'] },
        { name: 'web', image: TEST_IMAGE, command: WEB },
      ],
    });
    assert.equal(p.status, 201);
    const pod = await podStatus(p.body.id, 'RUNNING');
    const get = () => fetch(`http://127.0.0.1:${pod.portMappings['8080']}/index.html`).then((r) => r.text()).catch(() => undefined);
    assert.equal((await waitFor('web through the holder\'s port', async () => (await get())?.trim() || undefined)), 'hello-berth');
    assert.equal((await t.api('POST', `/api/v1/pods/${p.body.id}/restart`)).status, 200);
    await waitFor('restarted', async () => ((await t.api<PodView & { instances: { observedRestartGeneration: number }[] }>('GET', `/api/v1/pods/${p.body.id}`)).body.instances[0]!.observedRestartGeneration === 1 ? true : undefined));
    assert.equal((await waitFor('web answers again', async () => (await get())?.trim() || undefined)), 'hello-berth');
  });

  it('lets no owner see or touch another owner\'s pods', async () => {
    const mine = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
    const alice = (await t.api<{ key: string }>('POST', '/api/v1/keys', { name: 'alice', owner: 'alice' })).body.key;
    assert.equal((await t.api('GET', `/api/v1/pods/${mine.body.id}`, undefined, alice)).status, 404);
    assert.equal((await t.api('POST', `/api/v1/pods/${mine.body.id}/stop`, undefined, alice)).status, 404);
    assert.equal((await t.api('POST', `/api/v1/pods/${mine.body.id}/exec`, { command: ['true'] }, alice)).status, 404);
    assert.equal((await t.api('PATCH', `/api/v1/pods/${mine.body.id}`, { name: 'stolen' }, alice)).status, 404);
    const list = (await t.api<{ pods: { id: string }[] }>('GET', '/api/v1/pods', undefined, alice)).body.pods;
    assert.ok(!list.some((p) => p.id === mine.body.id));
    assert.equal((await t.api('POST', '/api/v1/keys', { name: 'escalate', admin: true }, alice)).status, 403);
  });

  it('settles a terminate racing a start on one final state', async () => {
    const p = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
    await podStatus(p.body.id, 'RUNNING');
    await t.api('POST', `/api/v1/pods/${p.body.id}/stop`);
    await podStatus(p.body.id, 'EXITED');
    const [term, start] = await Promise.all([t.api('POST', `/api/v1/pods/${p.body.id}/terminate`), t.api('POST', `/api/v1/pods/${p.body.id}/start`)]);
    assert.equal(term.status, 200);
    assert.ok(start.status === 200 || start.status === 409);
    await podStatus(p.body.id, 'TERMINATED');
    const after = await t.api<PodView & { desiredStatus: string }>('GET', `/api/v1/pods/${p.body.id}`);
    assert.equal(after.body.desiredStatus, 'TERMINATED');
    assert.equal((await t.server.store.listInstances({ podId: p.body.id as never })).length, 0);
  });

  it('puts the account\'s SSH keys in PUBLIC_KEY when the pod asks for SSH', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm2mB0bZkQ3k8iVQW0Jm7w5Z1kM6Jc8YbY3oJ8nqW9d tester@laptop';
    const added = await t.api<{ fingerprint: string }>('POST', '/api/v1/ssh-keys', { publicKey: key });
    assert.equal(added.status, 201);
    assert.match(added.body.fingerprint, /^SHA256:/);
    const withSsh = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0 });
    const without = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], volumeGb: 0, startSsh: false });
    await podStatus(withSsh.body.id, 'RUNNING');
    await podStatus(without.body.id, 'RUNNING');
    assert.equal((await exec(withSsh.body.id, 'echo "$PUBLIC_KEY"')).stdout.trim(), key);
    assert.equal((await exec(without.body.id, 'echo "${PUBLIC_KEY:-none}"')).stdout.trim(), 'none');
    assert.equal((await t.api('DELETE', `/api/v1/ssh-keys/${encodeURIComponent(added.body.fingerprint)}`)).status, 204);
  });

  it('creates a pod from a template, merging env per key', async () => {
    const tpl = await t.api<{ id: string }>('POST', '/api/v1/templates', { name: `tpl-${Date.now()}`, pod: { image: TEST_IMAGE, command: ['sleep', '3600'], env: { A: 'template', B: 'template' }, volumeGb: 0 } });
    assert.equal(tpl.status, 201);
    const p = await t.api<PodView>('POST', '/api/v1/pods', { templateId: tpl.body.id, env: { B: 'request', C: 'request' } });
    assert.equal(p.status, 201);
    assert.deepEqual(p.body.spec.containers[0]!.env, { A: 'template', B: 'request', C: 'request' });
    await podStatus(p.body.id, 'RUNNING');
    const dup = await t.api<Problem>('POST', '/api/v1/templates', { name: (await t.api<{ name: string }>('GET', `/api/v1/templates/${tpl.body.id}`)).body.name, pod: { image: TEST_IMAGE } });
    assert.equal(dup.status, 409);

    // The template was merged at create: changing it later does not leak into the pod's updates.
    await t.api('PATCH', `/api/v1/templates/${tpl.body.id}`, { pod: { env: { Z: 'later' } } });
    const renamed = await t.api<PodView>('PATCH', `/api/v1/pods/${p.body.id}`, { name: 'renamed' });
    assert.deepEqual(renamed.body.spec.containers[0]!.env, { A: 'template', B: 'request', C: 'request' });
    const only = await t.api<PodView>('PATCH', `/api/v1/pods/${p.body.id}`, { env: { ONLY: '1' } });
    assert.deepEqual(only.body.spec.containers[0]!.env, { ONLY: '1' }, 'PATCH env replaces the whole map, as RunPod');
  });

  it('updates a pod: a new version, containers recreated, the volume disk only grows', async () => {
    const p = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sleep', '3600'], env: { V: '1' } });
    const id = p.body.id;
    await podStatus(id, 'RUNNING');
    const shrink = await t.api<Problem>('PATCH', `/api/v1/pods/${id}`, { volumeGb: 5 });
    assert.equal(shrink.status, 400);
    const up = await t.api<PodView>('PATCH', `/api/v1/pods/${id}`, { env: { V: '2' } });
    assert.equal(up.status, 200);
    assert.equal(up.body.specVersion, 2);
    await waitFor('new env inside', async () => ((await exec(id, 'echo $V').catch(() => undefined))?.stdout.trim() === '2' ? true : undefined));
  });

  it('streams logs and pod events as server-sent events', async () => {
    const p = await t.api<PodView>('POST', '/api/v1/pods', { image: TEST_IMAGE, command: ['sh', '-c', 'for i in 1 2 3; do echo line-$i; done; sleep 3600'], volumeGb: 0 });
    await podStatus(p.body.id, 'RUNNING');
    const text = await waitFor('log lines', async () => {
      const res = await fetch(`${t.url}/api/v1/pods/${p.body.id}/logs?tail=10`, { headers: { authorization: `Bearer ${t.key}` } });
      const body = await res.text();
      return body.includes('line-3') ? body : undefined;
    });
    assert.match(text, /event: log\ndata: \{"stream":"stdout","time":"[^"]+","text":"line-1"\}/);

    const ac = new AbortController();
    const res = await fetch(`${t.url}/api/v1/events`, { headers: { authorization: `Bearer ${t.key}` }, signal: ac.signal });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const reader = res.body!.getReader();
    await t.api('POST', `/api/v1/pods/${p.body.id}/stop`);
    let seen = '';
    const decoder = new TextDecoder();
    const timer = setTimeout(() => ac.abort(), 20_000);
    while (!seen.includes('"status":"EXITED"') && !ac.signal.aborted) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value);
    }
    clearTimeout(timer);
    ac.abort();
    assert.ok(seen.includes(`"id":"${p.body.id}"`) && seen.includes('"status":"EXITED"'));
  });
});

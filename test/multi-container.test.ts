import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import type { PodView } from './support/pod-view.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

const docker = new Docker();

/** A port nothing listens on now, to ask for as a fixed host port. */
function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

describe('multi-container pods (Marathon style)', () => {
  let t: TestServer;
  before(async () => {
    await ensureTestImage();
    t = await startTestServer();
  });
  after(async () => t?.close());

  const get = async (id: string) => (await t.api<PodView>('GET', `/api/v1/pods/${id}`)).body;
  const podStatus = (id: string, status: string) =>
    waitFor(`pod ${id} ${status}`, async () => {
      const p = await get(id);
      return p.status === status ? p : undefined;
    });
  const exec = async (id: string, container: string, script: string) =>
    (await t.api<{ exitCode: number; stdout: string; stderr: string }>('POST', `/api/v1/pods/${id}/exec`, { container, command: ['sh', '-c', script] })).body;
  const containersOf = (id: string) => docker.listContainers({ all: true, filters: { label: [`berth.pod=${id}`] } });
  const volumesOf = async (instanceId: string) => ((await docker.listVolumes({ filters: { label: [`berth.instance=${instanceId}`] } })).Volumes ?? []).map((v) => v.Name);
  const idsOf = (p: PodView) => p.instances[0]!.containers.map((c) => c.containerId).sort();

  it('runs the containers in one network namespace behind an infra container, with shared volumes, endpoints and their env', async () => {
    const fixed = await freeTcpPort();
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'duo',
      volumeGb: 0,
      labels: { HAPROXY_GROUP: 'external' },
      volumes: [
        { name: 'shared', kind: 'ephemeral' },
        { name: 'data', kind: 'persistent', sizeMb: 64 },
      ],
      containers: [
        {
          name: 'web',
          image: TEST_IMAGE,
          command: ['sh', '-c', 'mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www'],
          endpoints: [{ name: 'http', containerPort: 8080, hostPort: fixed }],
          volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
        },
        {
          name: 'side-car',
          image: TEST_IMAGE,
          // Fetches from the other container over localhost and leaves the answer in the shared volume.
          command: ['sh', '-c', 'until wget -q -O /shared/fetched http://localhost:8080/index.html; do sleep 0.2; done; exec sleep 3600'],
          endpoints: [{ name: 'metrics-port', containerPort: 9100, hostPort: 0 }],
          volumeMounts: [
            { name: 'shared', mountPath: '/shared' },
            { name: 'data', mountPath: '/data' },
          ],
        },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const pod = await podStatus(id, 'RUNNING');
    const instanceId = pod.instances[0]!.id;

    // One infra container holds the namespace; both containers joined it.
    const cs = await containersOf(id);
    assert.equal(cs.length, 3);
    const infra = cs.find((c) => c.Labels['berth.role'] === 'infra');
    assert.ok(infra, 'an infra container');
    assert.equal(infra.Names[0], `/berth-${instanceId}-infra`);
    for (const c of cs.filter((x) => x !== infra)) {
      assert.equal((await docker.getContainer(c.Id).inspect()).HostConfig.NetworkMode, `container:${infra.Id}`);
    }

    const fetched = await waitFor('side-car fetched over localhost', async () => {
      const r = await exec(id, 'web', 'cat /shared/fetched 2>/dev/null');
      return r.stdout.includes('hello-from-web') ? r.stdout : undefined;
    });
    assert.equal(fetched.trim(), 'hello-from-web', 'the side-car reached the web container on localhost and wrote into the shared volume');

    // The fixed host port is honoured and reaches the web container.
    assert.equal(pod.portMappings['8080'], fixed, 'ports keeps containerPort → hostPort for endpoints');
    const page = await waitFor('http on the fixed host port', async () => {
      const res = await fetch(`http://127.0.0.1:${fixed}/index.html`).catch(() => undefined);
      return res?.ok ? res.text() : undefined;
    });
    assert.equal(page.trim(), 'hello-from-web');

    const inst = (await t.server.store.listInstances({ podId: id as never }))[0]!;
    const endpoints = inst.observed?.endpoints ?? {};
    assert.equal(endpoints.http, fixed);
    assert.ok(endpoints['metrics-port'] && endpoints['metrics-port'] > 0, 'hostPort 0 gets a free port');

    const env = (await exec(id, 'side-car', 'env')).stdout;
    for (const line of [
      'ENDPOINT_HTTP=8080',
      `EP_HOST_HTTP=${fixed}`,
      'EP_CONTAINER_HTTP=8080',
      'ENDPOINT_METRICS_PORT=9100',
      `EP_HOST_METRICS_PORT=${endpoints['metrics-port']}`,
      'MARATHON_CONTAINER_ID=side-car',
      `MESOS_TASK_ID=${instanceId}.side-car`,
      'MARATHON_APP_LABELS=HAPROXY_GROUP',
      'MARATHON_APP_LABEL_HAPROXY_GROUP=external',
      'MARATHON_CONTAINER_RESOURCE_CPUS=',
      'HOST=',
      `BERTH_POD_ID=${id}`,
    ]) {
      assert.ok(env.split('\n').some((l) => l.startsWith(line)), `env has ${line}`);
    }

    // Persistent volumes outlive a stop; ephemeral ones do not.
    assert.equal((await exec(id, 'side-car', 'echo kept > /data/file')).exitCode, 0);
    assert.deepEqual((await volumesOf(instanceId)).sort(), [`berth-eph-${instanceId}-shared`, `berth-pv-${instanceId}-data`]);
    await t.api('POST', `/api/v1/pods/${id}/stop`);
    await podStatus(id, 'EXITED');
    assert.equal((await containersOf(id)).length, 0, 'stop removes every container, the infra one too');
    assert.deepEqual(await volumesOf(instanceId), [`berth-pv-${instanceId}-data`], 'stop removes the ephemeral volume only');
    await t.api('POST', `/api/v1/pods/${id}/start`);
    await podStatus(id, 'RUNNING');
    assert.equal((await exec(id, 'side-car', 'cat /data/file')).stdout.trim(), 'kept');
    const restarted = (await t.server.store.listInstances({ podId: id as never }))[0]!;
    assert.equal(restarted.observed?.endpoints?.['metrics-port'], endpoints['metrics-port'], 'an endpoint keeps its host port across stop/start');

    await t.api('POST', `/api/v1/pods/${id}/terminate`);
    await waitFor('nothing left behind', async () => ((await containersOf(id)).length === 0 && (await volumesOf(instanceId)).length === 0 ? true : undefined));
  });

  it('replaces the whole instance when one container exits', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'fragile',
      volumeGb: 0,
      backoff: { initialSeconds: 0.2 },
      volumes: [{ name: 'scratch', kind: 'ephemeral' }],
      containers: [
        { name: 'steady', image: TEST_IMAGE, command: ['sleep', '3600'], volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] },
        { name: 'flaky', image: TEST_IMAGE, command: ['sleep', '3600'] },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const first = await podStatus(id, 'RUNNING');
    const before = idsOf(first);
    assert.equal(before.length, 2);
    const infraBefore = (await containersOf(id)).find((c) => c.Labels['berth.role'] === 'infra')!.Id;
    assert.equal((await exec(id, 'steady', 'echo old > /scratch/mark')).exitCode, 0);

    // Kill the flaky container's process from outside: exit code 137, not zero.
    await docker.getContainer(first.instances[0]!.containers.find((c) => c.name === 'flaky')!.containerId!).kill({ signal: 'SIGKILL' });
    const replaced = await waitFor('both containers replaced', async () => {
      const p = await get(id);
      const ids = idsOf(p);
      return p.status === 'RUNNING' && ids.length === 2 && ids.every((x) => x && !before.includes(x)) ? p : undefined;
    });
    assert.equal(replaced.instances[0]!.containers.length, 2);
    const infraAfter = (await containersOf(id)).find((c) => c.Labels['berth.role'] === 'infra')!.Id;
    assert.notEqual(infraAfter, infraBefore, 'the infra container is replaced too');
    assert.equal((await containersOf(id)).length, 3, 'nothing of the old instance is left');
    assert.equal((await exec(id, 'steady', 'test -e /scratch/mark && echo kept || echo fresh')).stdout.trim(), 'fresh', 'the replacement starts with an empty ephemeral volume');

    // The infra container dying replaces the instance as well.
    const ids2 = idsOf(replaced);
    await docker.getContainer(infraAfter).kill({ signal: 'SIGKILL' });
    await waitFor('replaced after the infra container died', async () => {
      const p = await get(id);
      const ids = idsOf(p);
      return p.status === 'RUNNING' && ids.every((x) => x && !ids2.includes(x)) ? p : undefined;
    });
  });

  it('joins a named Docker network in container mode, publishing its endpoints there', async () => {
    const name = `berth-test-net-${Date.now().toString(36)}`;
    await docker.createNetwork({ Name: name });
    try {
      const created = await t.api<PodView>('POST', '/api/v1/pods', {
        name: 'on-net',
        volumeGb: 0,
        network: { mode: 'container', name },
        containers: [
          {
            name: 'web',
            image: TEST_IMAGE,
            command: ['sh', '-c', 'mkdir -p /www && echo on-net > /www/index.html && exec httpd -f -p 8080 -h /www'],
            endpoints: [{ name: 'http', containerPort: 8080, hostPort: 0 }],
            healthCheck: { kind: 'http', endpoint: 'http', delaySeconds: 0, intervalSeconds: 2, timeoutSeconds: 1, gracePeriodSeconds: 30 },
          },
          { name: 'idle', image: TEST_IMAGE, command: ['sleep', '3600'] },
        ],
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id;
      const pod = await waitFor('running and healthy', async () => {
        const p = await get(id);
        return p.status === 'RUNNING' && p.instances[0]?.containers.find((c) => c.name === 'web')?.healthy === true ? p : undefined;
      });
      const infra = (await containersOf(id)).find((c) => c.Labels['berth.role'] === 'infra')!;
      const inspected = await docker.getContainer(infra.Id).inspect();
      assert.equal(inspected.HostConfig.NetworkMode, name);
      assert.ok(inspected.NetworkSettings.Networks[name]?.IPAddress, 'an address on the named network');
      const port = pod.portMappings['8080'];
      assert.ok(port);
      const page = await waitFor('http on the published port', async () => {
        const res = await fetch(`http://127.0.0.1:${port}/index.html`).catch(() => undefined);
        return res?.ok ? res.text() : undefined;
      });
      assert.equal(page.trim(), 'on-net');
      await t.api('POST', `/api/v1/pods/${id}/terminate`);
      await waitFor('pod on the named network cleaned up', async () => ((await containersOf(id)).length === 0 ? true : undefined));
    } finally {
      await docker.getNetwork(name).remove();
    }
  });

  it('runs a pod on the node network: the container listens on its allocated host port', async () => {
    const created = await t.api<PodView>('POST', '/api/v1/pods', {
      name: 'hostnet',
      volumeGb: 0,
      network: { mode: 'host' },
      containers: [
        {
          name: 'web',
          image: TEST_IMAGE,
          command: ['sh', '-c', 'mkdir -p /www && echo on-host > /www/index.html && exec httpd -f -p 127.0.0.1:$ENDPOINT_HTTP -h /www'],
          endpoints: [{ name: 'http', hostPort: 0 }],
        },
        { name: 'idle', image: TEST_IMAGE, command: ['sleep', '3600'] },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    await podStatus(id, 'RUNNING');
    const inst = (await t.server.store.listInstances({ podId: id as never }))[0]!;
    const port = inst.observed?.endpoints?.http;
    assert.ok(port, 'an allocated host port');
    const infra = (await containersOf(id)).find((c) => c.Labels['berth.role'] === 'infra')!;
    assert.equal((await docker.getContainer(infra.Id).inspect()).HostConfig.NetworkMode, 'host');
    const page = await waitFor('http on the node network', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/index.html`).catch(() => undefined);
      return res?.ok ? res.text() : undefined;
    });
    assert.equal(page.trim(), 'on-host');
    await t.api('POST', `/api/v1/pods/${id}/terminate`);
    await waitFor('host-network pod cleaned up', async () => ((await containersOf(id)).length === 0 ? true : undefined));
  });
});

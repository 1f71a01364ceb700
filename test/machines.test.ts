/**
 * A cluster as users run one: a server with its own node, and three machines (test/support/machines.ts),
 * each with its own dockerd in its own network namespace, reached by nothing, pulling from a registry.
 */
import { connects } from './support/clients.js';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { ensureTestImage, TEST_IMAGE } from './support/images.js';
import { Machines, type Machine } from './support/machines.js';
import { startTestServer, waitFor, type TestServer } from './support/server.js';

interface NodeView {
  id: string;
  name: string;
  gpus: { uuid: string; name: string; simulated: boolean }[];
}
interface PodView {
  id: string;
  status: string;
  statusMessage: string | null;
  nodeId: string | null;
  instances: { nodeId: string | null; gpus: { uuid: string; name: string; simulated: boolean }[] }[];
  connection: { tcp: { port: number; address: string | null }[] };
}
interface MarathonStatus {
  status: string;
  instances: { id: string; status: string; agentHostname?: string; agentId?: string }[];
}

const A100 = 'NVIDIA A100 80GB PCIe';
const H100 = 'NVIDIA H100 80GB HBM3';

describe('three machines next to the server', { timeout: 600_000 }, () => {
  let machines: Machines | undefined;
  let t: TestServer | undefined;
  let image = '';
  const host = new Docker();

  before(async () => {
    await ensureTestImage();
    machines = await Machines.start([
      { name: 'machine-1', gpus: [{ name: A100 }, { name: A100 }] },
      { name: 'machine-2', gpus: [{ name: H100 }] },
      { name: 'machine-3' },
    ]);
    image = await machines.publish(TEST_IMAGE);
    t = await startTestServer({ host: machines.address });
    await machines.startAgents({ server: t.url, token: await t.joinToken({ description: 'test machines' }) });
  });
  after(async () => {
    await t?.close();
    await machines?.close();
  });

  const api = <T,>(method: string, path: string, body?: unknown) => t!.api<T>(method, path, body);
  const m = (n: number): Machine => machines!.machine(n);
  const pod = async (id: string) => (await api<PodView>('GET', `/api/v1/pods/${id}`)).body;
  const running = (id: string) => waitFor(`${id} RUNNING`, async () => ((await pod(id)).status === 'RUNNING' ? pod(id) : undefined), 120_000);
  const sleeper = () => ({ image, command: ['sleep', '3600'], volumeGb: 0 });
  const on = (n: number) => [{ field: 'hostname', operator: 'IS', value: m(n).name }];

  it('joins three machines beside the server’s own node, each with its own declared GPUs', async () => {
    const nodes = (await api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes')).body.nodes;
    assert.equal(nodes.length, 4, JSON.stringify(nodes.map((n) => n.name)));
    const byName = (name: string) => nodes.find((n) => n.name === name)!;
    assert.deepEqual(byName('machine-1').gpus.map((g) => g.name), [A100, A100]);
    assert.deepEqual(byName('machine-2').gpus.map((g) => g.name), [H100]);
    assert.deepEqual(byName('machine-3').gpus, []);
    assert.ok([...byName('machine-1').gpus, ...byName('machine-2').gpus].every((g) => g.simulated), 'declared GPUs show as simulated');
    for (const n of [1, 2, 3]) assert.equal(byName(m(n).name).id, m(n).nodeId);
  });

  it('places a pod by GPU type on the machine that has it, where it runs on that machine’s own Docker', async () => {
    const a100 = await api<PodView>('POST', '/api/v1/pods', { ...sleeper(), gpuCount: 1, gpuTypeIds: [A100] });
    const h100 = await api<PodView>('POST', '/api/v1/pods', { ...sleeper(), gpuCount: 1, gpuTypeIds: [H100] });
    assert.equal(a100.status, 201, JSON.stringify(a100.body));
    assert.equal(h100.status, 201, JSON.stringify(h100.body));
    const onA100 = await running(a100.body.id);
    const onH100 = await running(h100.body.id);
    assert.equal(onA100.instances[0]!.nodeId, m(1).nodeId);
    assert.equal(onH100.instances[0]!.nodeId, m(2).nodeId);
    assert.deepEqual(onA100.instances[0]!.gpus.map((g) => [g.name, g.simulated]), [[A100, true]]);
    assert.deepEqual(onH100.instances[0]!.gpus.map((g) => [g.name, g.simulated]), [[H100, true]]);

    // The container is on machine 2's daemon, pulled from the registry, and nowhere else.
    const there = await m(2).podContainers(h100.body.id);
    assert.equal(there.length, 1);
    assert.equal(there[0]!.State, 'running');
    assert.equal(there[0]!.Image, image);
    assert.deepEqual(await host.listContainers({ all: true, filters: { label: [`berth.pod=${h100.body.id}`] } }), []);
    assert.deepEqual(await m(1).podContainers(h100.body.id), []);
    const env = await api<{ stdout: string; code?: string }>('POST', `/api/v1/pods/${h100.body.id}/exec`, { command: ['env'] });
    // Exec reaches a remote node through the agent's stream channel (issue 16); until that is merged the
    // server says plainly that it cannot. Once it is, only the first branch remains.
    if (env.status === 200) assert.match(env.body.stdout, /^NVIDIA_VISIBLE_DEVICES=GPU-machine-2-0$/m);
    else assert.equal(env.body.code, 'BERTH_ERR_NODE_UNAVAILABLE', JSON.stringify(env.body));

    for (const id of [a100.body.id, h100.body.id]) await api('POST', `/api/v1/pods/${id}/terminate`);
  });

  it('spreads a Marathon pod with UNIQUE hostname over three nodes, each building its own infra image', async () => {
    const M = '/marathon/v2';
    const resources = { cpus: 0.1, mem: 32 };
    const created = await api('POST', `${M}/pods`, {
      id: '/spread/three',
      containers: [
        { name: 'main', image: { kind: 'DOCKER', id: image }, exec: { command: { shell: 'exec sleep 3600' } }, resources },
        { name: 'sidecar', image: { kind: 'DOCKER', id: image }, exec: { command: { shell: 'exec sleep 3600' } }, resources },
      ],
      networks: [{ mode: 'container/bridge' }],
      scaling: { kind: 'fixed', instances: 3 },
      scheduling: { placement: { constraints: [{ fieldName: 'hostname', operator: 'UNIQUE' }] } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const stable = await waitFor(
      'three instances running',
      async () => {
        const s = (await api<MarathonStatus>('GET', `${M}/pods/spread/three::status`)).body;
        return s.instances.length === 3 && s.instances.every((i) => i.status === 'STABLE') ? s : undefined;
      },
      180_000,
    );
    const nodes = stable.instances.map((i) => i.agentId);
    assert.equal(new Set(nodes).size, 3, `three distinct nodes: ${JSON.stringify(stable.instances)}`);
    // Each machine that got one ran both containers and the infra container from its own image.
    for (const inst of stable.instances) {
      const machine = machines!.list.find((x) => x.nodeId === inst.agentId);
      if (!machine) continue; // the server's own node
      const instanceId = inst.id.slice(inst.id.indexOf('.instance-') + '.instance-'.length);
      const containers = await machine.docker.listContainers({ filters: { label: [`berth.instance=${instanceId}`] } });
      const infra = containers.filter((c) => c.Labels['berth.role'] === 'infra');
      assert.equal(infra.length, 1, `${machine.name}: ${JSON.stringify(containers.map((c) => c.Names))}`);
      assert.equal(containers.filter((c) => c.Labels['berth.container'] !== undefined).length, 2);
      assert.ok((await machine.docker.getImage(infra[0]!.Image).inspect()).Id, 'the infra image was built on the machine');
    }
    assert.equal((await api('DELETE', `${M}/pods/spread/three`)).status, 202);
  });

  it('accepts no inbound connection: a port its pod publishes answers on the machine, not from the server’s host', async () => {
    const web = await api<PodView>('POST', '/api/v1/pods', {
      image,
      volumeGb: 0,
      ports: ['8080/tcp'],
      command: ['sh', '-c', 'mkdir -p /www && echo hello-from-machine-3 > /www/index.html && exec httpd -f -p 8080 -h /www'],
      constraints: on(3),
    });
    assert.equal(web.status, 201, JSON.stringify(web.body));
    const up = await running(web.body.id);
    assert.equal(up.nodeId, m(3).nodeId);
    const address = up.connection.tcp[0]!.address!;
    const [ip, port] = address.split(':') as [string, string];
    assert.equal(ip, m(3).ip, "the TCP port shows the machine's address");

    // On the machine itself the pod answers…
    const page = await waitFor('the pod answering on its machine', async () => (await m(3).exec(['busybox', 'wget', '-q', '-O', '-', `http://${address}/index.html`])) || undefined, 30_000);
    assert.equal(page.trim(), 'hello-from-machine-3');
    // …from the host nothing gets in, neither the published port nor anything else of the machine's.
    assert.equal(await connects(ip, Number(port)), false, 'the published port is not reachable from outside');
    assert.equal(await connects(ip, 22), false);
    // Meanwhile the machine's agent dials the server: the pod it reported RUNNING is its work.
    await api('POST', `/api/v1/pods/${web.body.id}/terminate`);
    await waitFor('terminated on machine 3', async () => ((await m(3).podContainers(web.body.id)).length === 0 ? true : undefined), 60_000);
  });

  it('is cut off and back: while its veth is down it reaches nothing, then carries on', async () => {
    const healthz = ['busybox', 'wget', '-q', '-O', '-', `${t!.url}/healthz`];
    assert.match(await m(2).exec(healthz), /ok/);
    await m(2).cut();
    await assert.rejects(m(2).exec(healthz, 10_000), 'no way to the server while cut off');
    await m(2).restore();
    assert.match(await m(2).exec(healthz), /ok/);
    const after = await api<PodView>('POST', '/api/v1/pods', { ...sleeper(), constraints: on(2) });
    assert.equal((await running(after.body.id)).nodeId, m(2).nodeId, 'its agent works again');
    await api('POST', `/api/v1/pods/${after.body.id}/terminate`);
  });

  it('re-adopts its running pods when its agent is killed with -9 and restarted', async () => {
    const kept = await api<PodView>('POST', '/api/v1/pods', { ...sleeper(), constraints: on(3) });
    await running(kept.body.id);
    const before = await m(3).podContainers(kept.body.id);
    assert.equal(before.length, 1);

    await m(3).kill9Agent();
    assert.equal((await m(3).podContainers(kept.body.id))[0]!.State, 'running', 'the pod outlives its agent');
    await m(3).restartAgent();

    // A pod placed after the restart runs: the new agent has read its assignments and acted on them.
    const later = await api<PodView>('POST', '/api/v1/pods', { ...sleeper(), constraints: on(3) });
    await running(later.body.id);
    const after = await m(3).podContainers(kept.body.id);
    assert.deepEqual(after.map((c) => c.Id), before.map((c) => c.Id), 'the same container, no duplicate');
    assert.equal(after[0]!.State, 'running');
    assert.equal((await pod(kept.body.id)).status, 'RUNNING');
    assert.equal((await api<{ nodes: NodeView[] }>('GET', '/api/v1/nodes')).body.nodes.filter((n) => n.name === m(3).name).length, 1, 'one node, not a second one');
    for (const id of [kept.body.id, later.body.id]) await api('POST', `/api/v1/pods/${id}/terminate`);
  });
});
